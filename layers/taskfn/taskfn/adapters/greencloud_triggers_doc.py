"""Triggers in the OpenAPI document: bodies and views as JSON Schema (inline)."""

from __future__ import annotations

from taskfn.adapters.greencloud_doc import ID, STRING, _object
from taskfn.adapters.greencloud_triggers import TriggerPatch, TriggerRequest
from taskfn.apidoc import schema_of

BODY = schema_of(TriggerRequest)
PATCH = schema_of(TriggerPatch)
TAGS = {"type": "array", "items": _object({"id": ID, "name": STRING, "color": STRING})}
FIELDS = {"functionId": ID, "nextId": ID, "tags": TAGS, "status": {"type": "integer"},
          "includeResult": {"type": "boolean"},
          "createdAt": {"type": "string", "format": "date-time"}}
TRIGGER = _object({**FIELDS, "description": STRING, "stoppedChain": {
    "type": ["object", "null"], "description": "taskfn: the last chain stopped at the depth "
    "limit", "properties": {"taskId": ID, "reason": STRING,
                            "at": {"type": "string", "format": "date-time"}}}})
PAGE = _object({
    "pageCount": {"type": "integer", "minimum": 0}, "pageSize": {"type": "integer"},
    "totalCount": {"type": "integer", "minimum": 0},
    "results": {"type": "array", "items": _object({"id": ID, **FIELDS})}})
