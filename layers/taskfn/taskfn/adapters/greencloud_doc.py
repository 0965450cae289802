"""The GreenCloud platform API in the OpenAPI document: its views and error body as JSON
Schema (what adapters/greencloud.py renders), and the pieces its routes' docs share."""

from __future__ import annotations

from typing import Any

from taskfn.adapters.greencloud import (
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    PAGE_DEFAULT,
    CreateFunctionRequest,
    CreateTagRequest,
    UpdateFunctionRequest,
    UpdateTagRequest,
)
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


def _bounded(low: int, high: int, unit: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, "description": unit}


# GreenCloud's bounds (networkLatency: taskfn's). A view has every field; the POST's body any.
CAPABILITIES = _object({
    "timeout": _bounded(10, 120, "seconds"), "cpuCount": _bounded(0, 4, "CPUs; 0: no limit"),
    "memSize": _bounded(0, 2048, "MB; 0: the platform's default"),
    "networkLatency": _bounded(0, 60_000, "ms"),
    "privileged": {"type": "boolean", "description": "refused (400) unless the platform "
                   "allows privileged work"}}, required=())
TAGS = {"type": "array", "items": ref("Tag"),
        "description": "the function's tags that exist (a deleted one is left out)"}

COMPONENTS: dict[str, dict[str, Any]] = {
    "GreenCloudError": _object({"message": STRING, "detail": STRING}, required=("message",)),
    "Created": _object({"id": ID}),
    "Capabilities": CAPABILITIES,
    "Tag": _object({"id": ID, "name": STRING,
                    "color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}}),
    "NewTag": schema_of(CreateTagRequest),
    "TagPatch": schema_of(UpdateTagRequest),
    "FunctionPatch": schema_of(UpdateFunctionRequest),
    "FunctionMetrics": _object({
        "todaysTasks": {"type": "integer", "description": "created today (UTC)"},
        "pendingTasks": {"type": "integer", "minimum": 0, "description": "not finished"},
        "weekTasks": {"type": "integer", "description": "created in the last 7 days (UTC)"},
        "completedTasks": {"type": "integer", "description": "finished, whatever the outcome"},
    }),
    "Function": _object({
        "id": ID, "name": STRING, "description": STRING, "type": STRING, "lang": STRING,
        "tags": TAGS, "capabilities": ref("Capabilities"), "metrics": ref("FunctionMetrics"),
        "buildId": STRING, "paused": {"type": "boolean"}, "createdAt": UNIX_SECONDS,
        "url": {"type": "string", "description": "an HTTP function's URL; \"\" otherwise"}}),
    "FunctionListItem": _object({
        "id": ID, "name": STRING, "description": STRING, "lang": STRING,
        "tags": TAGS, "createdAt": UNIX_SECONDS}),
    "Build": _object({
        "id": ID, "functionId": ID, "status": {"enum": ["PENDING", "SUCCESS", "FAILED"]},
        "arch": {"type": "array", "items": STRING},
        "timeline": {"type": "array", "items": _object({"status": STRING,
                                                         "time": UNIX_SECONDS})},
        "log": {"type": "array", "items": STRING}}),
    "Task": _object({
        "functionId": STRING, "issued": UNIX_SECONDS, "assigned": UNIX_SECONDS,
        "finished": UNIX_SECONDS, "progress": INTEGER, "node": STRING, "timeout": INTEGER,
        "capabilities": ref("Capabilities"),
        # taskfn (triggers): the task whose finish created this one, null else
        "triggeredBy": {"type": ["string", "null"]}}),
    "BuildListItem": _object({
        "id": ID, "functionId": ID, "status": {"enum": ["PENDING", "SUCCESS", "FAILED"]},
        "arch": {"type": "array", "items": STRING}, "createdAt": UNIX_SECONDS}),
    "BuildPage": _object({
        "pageCount": {"type": "integer", "minimum": 0}, "pageSize": INTEGER,
        "totalCount": {"type": "integer", "minimum": 0},
        "results": {"type": "array", "items": ref("BuildListItem")}}),
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
# A numbered page (GreenCloud's schedule, endpoint and build lists).
NUMBERED_PAGE = (
    query("page", {"type": "integer", "minimum": 1, "default": PAGE_DEFAULT},
          "the page, from 1; page × limit at most 10000"),
    query("limit", {"type": "integer", "minimum": LIMIT_MIN, "maximum": LIMIT_MAX,
                    "default": LIMIT_DEFAULT}, "items per page"),
    query("functionId", ID, "only this function's (the caller's function; 404 otherwise)"),
)
TASK_FILTERS = (
    query("functionId", ID, "only this function's tasks (the caller's function; 404 "
          "otherwise)"),
    query("status", {"oneOf": [
        {"type": "integer", "enum": [0]},
        {"type": "integer", "minimum": 100, "maximum": 599},
        {"enum": ["pending", "succeeded", "failed"]}]},
          "the list's status: an HTTP status code, 0 while unfinished; or pending (not "
          "finished), succeeded (finished, not failed), failed (finished and failed). A "
          "filtered page may hold fewer than limit tasks, even none, with a cursor to go on"),
)
NEXT_CURSOR = {"X-Next-Cursor": {"description": "present when there is a next page",
                                 "schema": STRING}}
# The CSV export's query (GET /v1/task/{functionId}/csv).
DAY = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
CSV_QUERY = (
    query("showPlain", {"type": "boolean", "default": False},
          "Body as the body's text (a body that is not UTF-8 stays base64); base64 otherwise. "
          "true or false, any case"),
    query("scheduleId", ID, "only the tasks this schedule created"),
    query("scheduledId", ID, "the docs' other spelling of scheduleId (both: they must agree)"),
    query("dateSince", DAY, "tasks created on this UTC day or later"),
    query("dateUntil", DAY, "tasks created on this UTC day or earlier"),
)


def page_of(item: str) -> Answer:
    return Answer("one page, newest first", {"type": "array", "items": ref(item)},
                  headers=NEXT_CURSOR)
