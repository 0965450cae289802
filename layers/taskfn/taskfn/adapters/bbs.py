"""The Cell API, Diego BBS's task routes (reference/bbs.md): request parsing and validation,
the BBS view of a task record, and BBS's transport convention: every answer is HTTP 200 with
`error: {type, message}` in the body on failure. Only a missing or invalid token (401) and a
token whose scope does not allow the route (403) answer otherwise, as the gateway's other
routes do, and an internal fault answers 500 so that it shows as one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskfn import userjson
from taskfn.adapters.bbs_view import task_view as task_view  # the Cell API's task view
from taskfn.api import json_response, raw_body
from taskfn.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    TaskfnError,
    Unauthenticated,
    Unprocessable,
)
from taskfn.ids import GUID_MAX_LENGTH, GUID_PATTERN
from taskfn.lifecycle import MAX_RETRIES
from taskfn.powertools import APIGatewayHttpResolver, Response
from taskfn.services.cells import DesiredTask
from taskfn.services.events import EventsPage

# BBS's error types; any other domain error is reported as a bad request.
BBS_ERROR_TYPES = frozenset(
    {"InvalidRequest", "ResourceNotFound", "ResourceExists", "InvalidStateTransition",
     "RunningOnDifferentCell"}
)
ANNOTATION_MAX_BYTES = 10 * 1024  # BBS's maximumAnnotationLength
SOURCE_MAX_BYTES = 64 * 1024
# Request bodies: a desire carries a definition (annotation ≤ 10 KiB, input ≤ 32 KiB); the
# other calls a guid, a cell id, a reason or a result.
DESIRE_MAX_BYTES = 128 * 1024
REQUEST_MAX_BYTES = 64 * 1024


def error_response(error: TaskfnError) -> Response:
    if isinstance(error, Unauthenticated | Forbidden):
        status, kind = error.status, error.kind
    elif isinstance(error, Unprocessable):  # taskfn's Idempotency-Key: its status as given
        status, kind = error.status, "InvalidRequest"
    elif error.status >= 500:
        status, kind = 500, "UnknownError"
    elif error.kind in BBS_ERROR_TYPES:
        status, kind = 200, error.kind
    else:  # PayloadTooLarge, and any other bad input BBS has no type for
        status, kind = 200, "InvalidRequest"
    message = f"{error.message}: {error.detail}" if error.detail else error.message
    return json_response(status, {"error": {"type": kind, "message": message}})


def answer(**fields: Any) -> Response:
    """A successful answer: `error` null, then the route's own fields."""
    return json_response(200, {"error": None, **fields})


# --- requests ---------------------------------------------------------------------------

Guid = Annotated[str, Field(pattern=GUID_PATTERN, max_length=GUID_MAX_LENGTH)]
AnyGuid = Annotated[str, Field(min_length=1, max_length=GUID_MAX_LENGTH)]
CellId = Annotated[str, Field(min_length=1, max_length=256)]
Reason = Annotated[str, Field(min_length=1)]


class _Request(BaseModel):
    # JSON types as sent: no "true" for true, no "5" for 5.
    model_config = ConfigDict(defer_build=True, extra="ignore", strict=True)


class TaskDefinition(BaseModel):
    """BBS's TaskDefinition: the fields the platform acts on are checked, BBS's others are
    typed and kept as given, unknown ones kept too (an external cell may read them)."""

    model_config = ConfigDict(defer_build=True, extra="allow", strict=True)

    placement_tags: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=64
    )
    completion_callback_url: str = ""
    annotation: str = ""
    # taskfn's extension: one of the caller's functions, and its event body.
    function_id: str = ""
    input: Any = None
    # taskfn's extensions: attempts after a failed one (each after 2^n s), and the Python
    # source (a main.py with `handler`) an external `taskfn cell` runs.
    retries: int = Field(0, ge=0, le=MAX_RETRIES)
    source: str = Field("", max_length=SOURCE_MAX_BYTES)
    rootfs: str = ""
    env: list[dict[str, Any]] = Field(default_factory=list)
    action: dict[str, Any] | None = None
    disk_mb: int = Field(0, ge=0)
    memory_mb: int = Field(0, ge=0)
    cpu_weight: int = Field(0, ge=0, le=100)
    privileged: bool = False
    log_source: str = ""
    log_guid: str = ""
    metrics_guid: str = ""
    result_file: str = ""
    egress_rules: list[dict[str, Any]] = Field(default_factory=list)
    max_pids: int = Field(0, ge=0)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    network: dict[str, Any] | None = None
    image_username: str = ""
    image_password: str = ""
    log_rate_limit: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> TaskDefinition:
        if len(self.annotation.encode()) > ANNOTATION_MAX_BYTES:
            raise ValueError(f"annotation: at most {ANNOTATION_MAX_BYTES} bytes")
        if bool(self.image_username) != bool(self.image_password):
            raise ValueError("image_username and image_password must be set together")
        url = self.completion_callback_url
        if url:
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError("completion_callback_url: an http(s) URL")
            # Kept with a lower-case scheme: the stream's filter matches "http…".
            self.completion_callback_url = urlunsplit(parts._replace(scheme=parts.scheme.lower()))
        return self


PROMOTED = ("placement_tags", "completion_callback_url", "annotation", "function_id", "input",
            "retries")


class DesireTaskRequest(_Request):
    task_guid: Guid
    domain: str = Field(min_length=1, max_length=256)
    task_definition: TaskDefinition


class TasksRequest(_Request):
    domain: str = Field("", max_length=256)
    cell_id: str = Field("", max_length=256)


class TaskGuidRequest(_Request):
    """get, cancel, resolving, delete: BBS checks only that a guid is given."""

    task_guid: AnyGuid


class StartTaskRequest(_Request):
    task_guid: Guid
    cell_id: CellId


class HeartbeatTaskRequest(_Request):
    """taskfn's extension: a cell says the task still runs on it."""

    task_guid: Guid
    cell_id: CellId


class CompleteTaskRequest(_Request):
    task_guid: Guid
    cell_id: CellId
    failed: bool = False
    failure_reason: str = ""
    result: str = ""


class FailTaskRequest(_Request):
    task_guid: Guid
    failure_reason: Reason


class RejectTaskRequest(_Request):
    task_guid: Guid
    rejection_reason: Reason


def parse[T: BaseModel](app: APIGatewayHttpResolver, model: type[T], *,
                        limit: int = REQUEST_MAX_BYTES) -> T:
    """The JSON body as `model`; an empty body is an empty request (list.r3 with no filter).
    Anything malformed or invalid is InvalidRequest."""
    data = raw_body(app)
    if len(data) > limit:
        raise PayloadTooLarge("request body too large", f"at most {limit} bytes")
    value = userjson.loads(data) if data.strip() else {}
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise InvalidRequest("invalid request", _problems(error)) from error


def parse_desire(app: APIGatewayHttpResolver) -> DesiredTask:
    request = parse(app, DesireTaskRequest, limit=DESIRE_MAX_BYTES)
    definition = request.task_definition
    return DesiredTask(
        task_guid=request.task_guid,
        domain=request.domain,
        definition=definition.model_dump(mode="json", exclude_unset=True, exclude=set(PROMOTED)),
        placement_tags=tuple(definition.placement_tags),
        completion_callback_url=definition.completion_callback_url,
        annotation=definition.annotation,
        function_id=definition.function_id,
        retries=definition.retries,
        input=definition.input,
    )


def _problems(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


# --- views ------------------------------------------------------------------------------
# Task views are in bbs_view.py (the events Lambda uses them without this module).

EVENTS_RETRY_MS = 1000


@dataclass(frozen=True)
class EventsRequest:
    last_event_id: str | None
    wait_s: float


def events_request(app: APIGatewayHttpResolver, *, default_wait_s: float) -> EventsRequest:
    """Where to resume: the Last-Event-ID header (what EventSource sends on reconnect), or a
    `last_event_id` query parameter for clients that cannot set headers; `wait` caps the
    seconds to wait for a first event (0 answers at once)."""
    event = app.current_event
    params = event.query_string_parameters or {}
    last = event.headers.get("last-event-id") or params.get("last_event_id") or None
    wait = params.get("wait")
    if wait is None:
        return EventsRequest(last, default_wait_s)
    try:
        seconds = float(wait)
    except ValueError:
        raise InvalidRequest("wait: a number of seconds") from None
    if not 0 <= seconds <= default_wait_s:
        raise InvalidRequest(f"wait: between 0 and {default_wait_s:g} seconds")
    return EventsRequest(last, seconds)


def event_stream(page: EventsPage) -> Response:
    """BBS's event stream: `id:`, `event:` and `data:` lines per event. With no event, an
    `id:` alone moves the client's Last-Event-ID forward, so its next request resumes where
    this one looked, not from the time it reconnects."""
    lines = [f"retry: {EVENTS_RETRY_MS}\n\n"]
    for event in page.events:
        data = json.dumps(event.data, separators=(",", ":"))
        lines.append(f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n")
    if not page.events:
        lines.append(f"id: {page.resume_id}\n\n")
    return Response(
        status_code=200,
        content_type="text/event-stream",
        body="".join(lines),
        headers={"Cache-Control": "no-cache"},
    )
