"""The Cell API (Diego BBS) in the OpenAPI document: BBS answers 200 with `error` null or
{type, message} in the body (a missing token, a scope that does not allow the route and an
internal fault excepted), so each route's 200 schema carries both."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from taskfn.adapters import bbs
from taskfn.apidoc import CELL, Answer, header, json_body, query, ref, schema_of

API = CELL

ERROR_TYPES = sorted(bbs.BBS_ERROR_TYPES | {"Unauthorized", "Forbidden", "UnknownError"})
STRING = {"type": "string"}
NANOSECONDS = {"type": "integer", "description": "nanoseconds since the epoch"}

COMPONENTS: dict[str, dict[str, Any]] = {
    "CellErrorDetail": {"type": "object", "required": ["type", "message"],
                        "properties": {"type": {"enum": ERROR_TYPES}, "message": STRING}},
    "CellError": {"type": "object", "required": ["error"],
                  "properties": {"error": ref("CellErrorDetail")}},
    "CellTask": {
        "type": "object",
        "description": "BBS's Task: the definition's fields inlined, then the task's own.",
        "required": ["task_guid", "domain", "state", "created_at", "updated_at"],
        "properties": {
            "task_guid": STRING, "domain": STRING, "created_at": NANOSECONDS,
            "updated_at": NANOSECONDS, "first_completed_at": NANOSECONDS,
            "state": {"enum": ["Pending", "Running", "Completed", "Resolving"]},
            "cell_id": STRING, "result": STRING, "failed": {"type": "boolean"},
            "failure_reason": STRING, "rejection_count": {"type": "integer"},
            "rejection_reason": STRING, "placement_tags": {"type": "array", "items": STRING},
            "completion_callback_url": STRING, "annotation": STRING, "function_id": STRING,
            "input": {}, "retries": {"type": "integer"},
        },
    },
}


def body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    COMPONENTS.setdefault(model.__name__, schema_of(model))
    return json_body(ref(model.__name__), required=required)


def answer(description: str, **fields: dict[str, Any]) -> dict[int, Answer]:
    """The 200 of a BBS route: `error` null with the route's fields, or an error."""
    schema = {"type": "object", "required": ["error"],
              "properties": {"error": {"anyOf": [{"type": "null"}, ref("CellErrorDetail")]},
                             **fields}}
    return {200: Answer(description + "; or `error` says why not", schema)}


DONE = answer("done")
TASK = {"task": ref("CellTask")}
TASKS = {"tasks": {"type": "array", "items": ref("CellTask")}}
EVENTS = (
    query("wait", {"type": "number", "minimum": 0, "maximum": 25},
          "seconds to wait for a first event (0: answer at once)"),
    query("last_event_id", STRING, "where to resume, for clients that cannot set headers"),
    header("Last-Event-ID", STRING, "where to resume (what EventSource sends on reconnect)"),
)
STREAM = {200: Answer("server-sent events: id, event and data lines; a bad request is a BBS "
                      "error as JSON", {"type": "string"}, media="text/event-stream",
                      also={"application/json": ref("CellError")})}
