"""The GreenCloud platform API (reference/greencloud.md): request parsing, views of the
domain records in GreenCloud's field names, and its error body {message, detail?}."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskfn import userjson
from taskfn.api import json_response
from taskfn.errors import InvalidRequest, TaskfnError
from taskfn.models import BuildRecord, FunctionRecord, TaskRecord, TaskSummary
from taskfn.services.functions import NewFunction
from taskfn.services.tasks import TaskResponse


def error_response(error: TaskfnError) -> Response:
    body: dict[str, Any] = {"message": error.message}
    if error.detail:
        body["detail"] = error.detail
    return json_response(error.status, body)


def unix_seconds(ns: int) -> str:
    """GreenCloud times are unix-second strings; "0" when the moment has not come."""
    return str(ns // 1_000_000_000)


def validation_detail(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


class CreateFunctionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9]+$", min_length=1, max_length=64)
    description: str = Field("", max_length=80)
    lang: Literal["GO", "PY", "JS", "CS", "RB", "RS"] = "PY"
    tag: list[str] = Field(default_factory=list, max_length=20)
    type: str = Field("code", max_length=32)
    source: str | None = Field(None, max_length=256 * 1024)

    @field_validator("lang", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def parse_new_function(body: dict[str, Any]) -> NewFunction:
    try:
        request = CreateFunctionRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid function", validation_detail(error)) from error
    if request.lang != "PY":
        raise InvalidRequest(
            f"lang {request.lang} is not supported yet", "taskfn runs PY functions"
        )
    return NewFunction(
        name=request.name,
        description=request.description,
        lang=request.lang.lower(),
        type=request.type,
        tags=tuple(request.tag),
        source=request.source,
    )


def parse_task_body(data: bytes, content_type: str | None) -> Any:
    """What the function gets as event.body: the parsed JSON body, the raw text when it is
    not JSON (or JSON that cannot be kept as such, when not declared JSON), or None when there
    is none. A body declared JSON must parse and be kept."""
    if not data:
        return None
    declared_json = bool(content_type) and "json" in content_type.lower()
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        raise InvalidRequest("the body must be UTF-8 text or JSON") from error
    try:
        return userjson.loads(text)
    except InvalidRequest:  # without a JSON content type, what is not JSON taskfn keeps is text
        if declared_json:
            raise
        return text


def function_view(function: FunctionRecord) -> dict[str, Any]:
    return {
        "id": function.id,
        "name": function.name,
        "description": function.description,
        "type": function.type,
        "lang": function.lang,
        "tags": function.tags,
        "capabilities": function.capabilities.model_dump(),
        "buildId": function.build_id,
        "paused": function.paused,
        "createdAt": unix_seconds(function.created_at),
    }


def function_list_item(function: FunctionRecord) -> dict[str, Any]:
    return {
        "id": function.id,
        "name": function.name,
        "description": function.description,
        "lang": function.lang,
        "tags": function.tags,
        "createdAt": unix_seconds(function.created_at),
    }


def build_view(build: BuildRecord) -> dict[str, Any]:
    return {
        "id": build.id,
        "functionId": build.function_id,
        "status": build.status.value,
        "arch": build.arch,
        "timeline": build.timeline,
        "log": build.log,
    }


def task_view(task: TaskRecord) -> dict[str, Any]:
    capabilities = task.capabilities.model_dump(exclude={"timeout"})
    return {
        "functionId": task.function_id,
        "issued": unix_seconds(task.created_at),
        "assigned": unix_seconds(task.started_at),
        "finished": unix_seconds(task.first_completed_at),
        "progress": task.progress,
        "node": task.node,
        "timeout": task.timeout,
        "capabilities": capabilities,
    }


def task_list_item(task: TaskSummary) -> dict[str, Any]:
    """status is the function's HTTP status, 0 until the task has finished."""
    return {
        "id": task.task_guid,
        "issued": unix_seconds(task.created_at),
        "progress": task.progress,
        "status": (task.response_status or 500) if task.finished else 0,
    }


def page_headers(cursor: str | None) -> dict[str, str]:
    """GreenCloud lists are bare arrays; the next page's cursor travels in a header."""
    return {"X-Next-Cursor": cursor} if cursor else {}


def replay(result: TaskResponse) -> Response:
    """The function's own response. Text goes out as text; anything that is not UTF-8 as
    bytes, which API Gateway sends base64-encoded. One too large for a Lambda answer is a 303
    to its body in S3, with the function's status in X-Taskfn-Status (taskfn's extension)."""
    if result.location is not None:
        return Response(status_code=303, body="", headers={
            "Location": result.location, "X-Taskfn-Status": str(result.status),
            "Cache-Control": "no-store"})
    try:
        body: str | bytes = result.body.decode()
    except UnicodeDecodeError:
        body = result.body
    return Response(status_code=result.status, body=body, headers=result.headers)
