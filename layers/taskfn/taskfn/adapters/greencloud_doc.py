"""The GreenCloud platform API in the OpenAPI document: its views and error body as JSON
Schema (what adapters/greencloud.py renders), and the pieces its routes' docs share."""

from __future__ import annotations

from typing import Any

from taskfn.adapters.greencloud import CreateFunctionRequest
from taskfn.apidoc import GREENCLOUD, Answer, query, ref, schema_of

API = GREENCLOUD

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
UNIX_SECONDS = {"type": "string", "pattern": "^[0-9]+$",
                "description": "unix seconds; \"0\" until the moment has come"}
ID = {"type": "string", "minLength": 1}


def _object(properties: dict[str, Any], required: tuple[str, ...] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties if required is None else required)}


CAPABILITIES = _object({
    "timeout": INTEGER, "cpuCount": INTEGER, "memSize": INTEGER, "networkLatency": INTEGER,
    "privileged": {"type": "boolean"}}, required=())

COMPONENTS: dict[str, dict[str, Any]] = {
    "GreenCloudError": _object({"message": STRING, "detail": STRING}, required=("message",)),
    "Created": _object({"id": ID}),
    "Capabilities": CAPABILITIES,
    "Function": _object({
        "id": ID, "name": STRING, "description": STRING, "type": STRING, "lang": STRING,
        "tags": {"type": "array", "items": STRING}, "capabilities": ref("Capabilities"),
        "buildId": STRING, "paused": {"type": "boolean"}, "createdAt": UNIX_SECONDS}),
    "FunctionListItem": _object({
        "id": ID, "name": STRING, "description": STRING, "lang": STRING,
        "tags": {"type": "array", "items": STRING}, "createdAt": UNIX_SECONDS}),
    "Build": _object({
        "id": ID, "functionId": ID, "status": {"enum": ["PENDING", "SUCCESS", "FAILED"]},
        "arch": {"type": "array", "items": STRING},
        "timeline": {"type": "array", "items": _object({"status": STRING,
                                                         "time": UNIX_SECONDS})},
        "log": {"type": "array", "items": STRING}}),
    "Task": _object({
        "functionId": STRING, "issued": UNIX_SECONDS, "assigned": UNIX_SECONDS,
        "finished": UNIX_SECONDS, "progress": INTEGER, "node": STRING, "timeout": INTEGER,
        "capabilities": ref("Capabilities")}),
    "TaskListItem": _object({
        "id": ID, "issued": UNIX_SECONDS, "progress": INTEGER,
        "status": {"type": "integer", "description": "the function's HTTP status; 0 until the "
                   "task has finished"}}),
    "TaskLogs": _object({
        "stdout": STRING, "stderr": STRING, "stdoutDropped": INTEGER,
        "stderrDropped": INTEGER}),
    "NewToken": _object({"user": {"type": "string",
                                  "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"},
                         "scope": {"enum": ["user", "cell", "admin"]}}, required=("user",)),
    "Token": _object({"id": ID, "token": {"type": "string", "description": "shown only once"},
                      "user": STRING, "scope": {"enum": ["user", "cell", "admin"]}}),
    "NewFunction": schema_of(CreateFunctionRequest),
    "NewUpload": _object({"size": {"type": "integer", "minimum": 1,
                                   "description": "the zip's length in bytes"}}),
    "Upload": _object({
        "uploadId": ID, "url": {"type": "string", "format": "uri"}, "method": {"enum": ["PUT"]},
        "headers": {"type": "object", "additionalProperties": STRING},
        "expiresIn": INTEGER}),
}


def created(what: str) -> Answer:
    return Answer(f"{what} created", ref("Created"))


PAGE = (
    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
          "items per page (default 100)"),
    query("cursor", STRING, "the X-Next-Cursor of the previous page"),
)
NEXT_CURSOR = {"X-Next-Cursor": {"description": "present when there is a next page",
                                 "schema": STRING}}


def page_of(item: str) -> Answer:
    return Answer("one page, newest first", {"type": "array", "items": ref(item)},
                  headers=NEXT_CURSOR)
