"""Schedules in the OpenAPI document: bodies and views as JSON Schema (inline)."""

from __future__ import annotations

from taskfn.adapters.greencloud_doc import ID, STRING, _object
from taskfn.adapters.greencloud_schedules import SchedulePatch, ScheduleRequest
from taskfn.apidoc import query, schema_of

BODY = schema_of(ScheduleRequest)
PATCH = schema_of(SchedulePatch)
FIELDS = {"active": {"type": "boolean"}, "functionId": ID, "cron": STRING,
          "timezone": STRING, "description": STRING}
SCHEDULE = _object({**FIELDS, "inlinePayload": _object({
    "query": {"type": "object", "additionalProperties": STRING},
    "body": {"type": "string", "format": "byte", "description": "base64"},
    "contentType": STRING})})
PAGE = _object({
    "pageCount": {"type": "integer", "minimum": 0}, "pageSize": {"type": "integer"},
    "totalCount": {"type": "integer", "minimum": 0},
    "results": {"type": "array", "items": _object({"id": ID, **FIELDS})}})
LIST_QUERY = (
    query("timezone", STRING, "only schedules in this IANA time zone"),
)
