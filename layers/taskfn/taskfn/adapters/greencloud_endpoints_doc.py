"""Public endpoints in the OpenAPI document: their bodies and views as JSON Schema (inline,
so that the shared components stay the other routes')."""

from __future__ import annotations

from taskfn.adapters.greencloud_doc import ID, STRING, _object
from taskfn.adapters.greencloud_endpoints import EndpointRequest
from taskfn.apidoc import Answer, ref, schema_of

RFC3339 = {"type": "string", "format": "date-time"}
TAGS = {"type": "array", "items": ref("Tag")}
WINDOW = {"oneOf": [{"type": "null"}, _object({
    "from": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    "to": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    "timezone": {"type": "string", "description": "IANA, e.g. Europe/Berlin"}})],
    "description": "calls are taken from `from` until `to` on that clock (wrapping midnight "
                   "when to < from); null: at any time"}
BODY = schema_of(EndpointRequest)
ENDPOINT = _object({
    "id": ID, "functionId": ID, "description": STRING, "tags": TAGS,
    "dailyLimit": {"type": "integer", "minimum": -1, "description": "-1: no limit"},
    "origin": {"type": "array", "items": STRING}, "ip": {"type": "array", "items": STRING},
    "timeLimit": WINDOW, "createdAt": RFC3339})
METRICS = _object({
    "todayTasks": {"type": "integer", "description": "calls that made a task today (UTC)"},
    "pendingTasks": {"type": "integer", "minimum": 0, "description": "not finished"},
    "weekTasks": {"type": "integer", "description": "in the last 7 days (UTC)"}})
PAGE = _object({
    "pageCount": {"type": "integer", "minimum": 0}, "pageSize": {"type": "integer"},
    "totalCount": {"type": "integer", "minimum": 0},
    "results": {"type": "array", "items": _object({
        "id": ID, "description": STRING, "tags": TAGS, "createdAt": RFC3339})}})
RESULT = {
    200: Answer("the function's response (its own status)", {}, media="*/*"),
    303: Answer("a response too large for a Lambda answer: its body is at Location (a "
                "presigned S3 GET), its status in X-Taskfn-Status",
                headers={"Location": {"schema": STRING},
                         "X-Taskfn-Status": {"schema": STRING}})}
