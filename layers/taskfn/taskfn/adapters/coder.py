"""Coder's tasks API (reference/coder.md; its client is seeds/coder-tasks-sdk.go.txt): its
error body {message, detail?, validations?}, request checks, name rules, the `q` filter
language, the status table and the Task, log and build views. Pure: no I/O.

A Coder task is one taskfn task record (services/agenttasks.py): its id is the record's
UUID, its template is the function and its template version the build it runs.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from taskfn import api, userjson
from taskfn.api import json_response
from taskfn.errors import InvalidRequest, NotFound, TaskfnError, Unauthenticated
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller
from taskfn.powertools import APIGatewayHttpResolver, Response

if TYPE_CHECKING:
    from taskfn.models import FunctionRecord, TaskRecord

BODY_MAX = 1024 * 1024  # of a request's JSON body (an input is at most this, as UTF-8)
NAME_MAX = 32
DISPLAY_NAME_MAX = 64
# One input (a prompt, a send, a preset's default), as UTF-8: the initial prompt is kept on
# the task's own item, which DynamoDB caps at 400 KB in all.
INPUT_MAX = 64 * 1024
# A conversation's history and next input, as JSON: what one turn's function is given (a
# Lambda invocation takes at most 6 MB).
CONVERSATION_MAX = 4 * 1024 * 1024
GENERATED_STEM_MAX = 27  # a generated name: this much of the prompt, "-" and 4 hex digits
_NAME = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
RESERVED_NAMES = frozenset({"new", "create"})
NOT_FOUND = "Resource not found or you do not have access to this resource."
SIGNED_OUT = ("You are signed out or your session has expired. Please sign in again to "
              "continue.")
ME = "me"
NIL_UUID = "00000000-0000-0000-0000-000000000000"

# taskfn has one organization, and its users have names only: their Coder ids are UUIDs
# derived from the names (uuid5), the same on every call and every deployment.
_NAMESPACE = uuid.UUID("5f0c3a1e-7d2b-4c61-9a8e-3b4d5c6e7f80")
ORGANIZATION_NAME = "default"
ORGANIZATION_ID = str(uuid.uuid5(_NAMESPACE, "organization:default"))


def user_id(user: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"user:{user}"))


# --- the error body ------------------------------------------------------------------------


def with_validations[E: TaskfnError](error: E, validations: list[dict[str, str]]) -> E:
    """`error` with Coder's `validations` ([{field, detail}])."""
    error.validations = validations  # type: ignore[attr-defined]
    return error


def error_response(error: TaskfnError) -> Response:
    """Coder's codersdk.Response: message, detail when there is one, validations when any.
    Every 404 reads as upstream's (not found and not yours are one answer); a 500 says
    nothing of its cause."""
    message, detail = error.message, error.detail
    if isinstance(error, NotFound):
        message, detail = NOT_FOUND, None
    elif isinstance(error, Unauthenticated):
        message = SIGNED_OUT
        detail = "Send a taskfn token as Coder-Session-Token or Authorization: Bearer."
    elif error.status >= 500:
        message, detail = "An internal error occurred.", None
    body: dict[str, Any] = {"message": message}
    if detail:
        body["detail"] = detail
    validations = getattr(error, "validations", None)
    if validations:
        body["validations"] = validations
    return json_response(error.status, body)


def resolver() -> APIGatewayHttpResolver:
    return api.resolver(error_response)


def caller(app: APIGatewayHttpResolver) -> Caller:
    return api.caller(app)


# --- the request ---------------------------------------------------------------------------


def body(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The request's JSON object, as Coder's httpapi.Read refuses others: 400 "Request body
    must be valid JSON." with the reason as detail. The caller is checked first: an
    unauthenticated request is 401 whatever its body."""
    api.caller(app)
    raw = api.raw_body(app)
    if len(raw) > BODY_MAX:
        raise InvalidRequest("Request body too large.", f"at most {BODY_MAX} bytes")
    try:
        value = userjson.loads(raw or b"null")
    except InvalidRequest as error:
        raise InvalidRequest("Request body must be valid JSON.", error.message) from None
    if not isinstance(value, dict):
        raise InvalidRequest("Request body must be valid JSON.", "the body must be an object")
    return value


def string_field(values: dict[str, Any], name: str, *, required: bool = False) -> str:
    """A string field of the body ("" when absent); another JSON type is Go's decode error."""
    value = values.get(name)
    if value is None:
        if required:
            raise InvalidRequest("Request body must be valid JSON.", f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidRequest("Request body must be valid JSON.",
                             f"json: cannot unmarshal {type(value).__name__} into field "
                             f"{name} of type string")
    if "\x00" in value:
        raise InvalidRequest("Request body must be valid JSON.", f"{name} holds a NUL")
    return value


def uuid_field(values: dict[str, Any], name: str) -> str | None:
    """A UUID field in canonical form; None when absent or the nil UUID (Go sends a zero
    uuid.UUID for an omitempty field: arrays are never empty)."""
    text = string_field(values, name)
    if not text:
        return None
    try:
        parsed = str(uuid.UUID(text))
    except ValueError:
        raise InvalidRequest("Request body must be valid JSON.",
                             f"{name}: invalid UUID {text[:64]!r}") from None
    return None if parsed == NIL_UUID else parsed


def segment(raw: str) -> str:
    """A path segment as the client meant it (API Gateway passes the raw path on)."""
    return unquote(raw)


def as_uuid(text: str) -> str | None:
    """`text` as a canonical UUID, or None when it is not one (then it is a name)."""
    try:
        return str(uuid.UUID(text)) if len(text) >= 32 else None
    except ValueError:
        return None


def is_caller(who: str, caller: Caller) -> bool:
    """Whether `{user}` (me, a name or an id) names the caller."""
    lowered = who.lower()
    return lowered in (ME, caller.user.lower()) or as_uuid(who) == user_id(caller.user)


# --- ids: taskfn's 24-hex ids as Coder's UUIDs ----------------------------------------------


def id_uuid(item_id: str) -> str:
    """A function's or build's 24-hex id as a UUID (the id, then zeros): reversible, so a
    template version id is looked up by key."""
    h = item_id + "0" * 8
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def uuid_id(value: str) -> str | None:
    """id_uuid's inverse; None for a UUID no taskfn id maps to."""
    h = value.replace("-", "")
    return h[:24] if len(h) == 32 and h[24:] == "0" * 8 else None


# --- names -----------------------------------------------------------------------------------


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a task's name (codersdk.NameValid), or None."""
    if len(name) > NAME_MAX:
        return f"must be <= {NAME_MAX} characters"
    if not _NAME.match(name):
        return "must be alphanumeric with hyphens"
    if name.lower() in RESERVED_NAMES:
        return f"cannot use {name.lower()!r} as a name"
    if as_uuid(name):  # `{task}` would read it as an id
        return "must not be a UUID"
    return None


def check_input(text: str) -> str:
    """An input as a turn may take it: not blank, at most INPUT_MAX bytes."""
    if not text.strip():
        raise with_validations(InvalidRequest("Task input is required."),
                               [{"field": "input", "detail": "must not be empty"}])
    size = len(text.encode("utf-8"))
    if size > INPUT_MAX:
        raise with_validations(
            InvalidRequest("Task input is too long.", f"it has {size} bytes as UTF-8"),
            [{"field": "input", "detail": f"must be at most {INPUT_MAX} bytes"}])
    return text


def check_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise with_validations(
            InvalidRequest("Unable to create a Task with the provided name.",
                           f"Task name {name[:64]!r} is not valid: {problem}."),
            [{"field": "name", "detail": problem}])
    return name


def generated_name(prompt: str, suffix: str | None = None) -> str:
    """A name from the prompt: its first words lower-cased, runs of anything but [a-z0-9]
    made one '-', cut to 27 characters, then '-' and 4 hex digits ("task" when nothing is
    left of the prompt)."""
    stem = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:GENERATED_STEM_MAX]
    stem = stem.strip("-") or "task"
    return f"{stem}-{suffix or secrets.token_hex(2)}"


def display_name_of(given: str, prompt: str) -> str:
    if len(given) > DISPLAY_NAME_MAX:
        raise with_validations(
            InvalidRequest("Display name must be 64 characters or less.",
                           f"it has {len(given)} characters"),
            [{"field": "display_name", "detail": "must be 64 characters or less"}])
    return given or prompt[:DISPLAY_NAME_MAX]


# --- status: one table -------------------------------------------------------------------------

ANY = None
# (record state, turn: first or later, held, failed) → Coder status; the first row that
# matches wins (ANY matches anything). A conversation's first turn is its start-up: pending
# while queued, initializing while it runs. From then on it is active, between turns and
# during later ones (a send during one is 409: the app is busy). Paused is a finished turn
# held (or a turn held for its paused function); error a turn that failed; unknown any
# other record (Resolving: a callback delivery).
STATUS_TABLE: tuple[tuple[State | None, str | None, bool | None, bool | None, str], ...] = (
    (State.COMPLETED, ANY, True, False, "paused"),
    (State.PENDING, ANY, True, ANY, "paused"),
    (State.COMPLETED, ANY, ANY, True, "error"),
    (State.PENDING, "first", False, ANY, "pending"),
    (State.RUNNING, "first", ANY, ANY, "initializing"),
    (State.PENDING, "later", False, ANY, "active"),
    (State.RUNNING, "later", ANY, ANY, "active"),
    (State.COMPLETED, ANY, False, False, "active"),
    (ANY, ANY, ANY, ANY, "unknown"),
)
STATUSES = ("pending", "initializing", "active", "paused", "unknown", "error")
STATES = ("working", "idle", "complete", "failed")


def status_of(task: TaskRecord) -> str:
    key = (task.state, "first" if task.turn <= 1 else "later", bool(task.held_at),
           task.failed and task.state is State.COMPLETED)
    for row in STATUS_TABLE:
        if all(want is None or want == got for want, got in zip(row[:4], key, strict=True)):
            return row[4]
    raise AssertionError("the table's last row matches everything")


def busy(task: TaskRecord) -> bool:
    """A turn is queued or running: the function is not ready for input."""
    return task.state in (State.PENDING, State.RUNNING)


WORKSPACE_STATUS = {"pending": "pending", "initializing": "starting", "active": "running",
                    "paused": "stopped", "error": "failed"}


# --- the q filter --------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    owner: str | None = None  # "me", a name or a UUID, as given
    organization: str | None = None
    status: str | None = None


def _split(text: str, delimiter: str, keep_quotes: bool) -> list[str]:
    """Coder's splitQueryParameterByDelimiter: split on `delimiter` outside double quotes."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
            if keep_quotes:
                current.append(char)
            continue
        if char == delimiter and not quoted:
            if current:
                parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if current:
        parts.append("".join(current))
    return parts


def invalid_query(validations: list[dict[str, str]]) -> InvalidRequest:
    return with_validations(InvalidRequest("Invalid task search query."), validations)


def parse_query(q: str) -> Filter:
    """`q` as Coder's searchquery.Tasks reads it: lower-cased, space-separated elements,
    `key:value` (values may be double-quoted) or a bare word (the owner); keys owner,
    organization and status (one of the six). Anything else is 400 "Invalid task search
    query." with validations [{field, detail}]."""
    values: dict[str, list[str]] = {}
    for element in _split(q.lower(), " ", keep_quotes=True):
        if element.startswith(":") or element.endswith(":"):
            raise invalid_query([{"field": "q", "detail":
                                  f"Query element {element!r} cannot start or end with ':'"}])
        parts = _split(element, ":", keep_quotes=False)
        if len(parts) == 1:
            values.setdefault("owner", []).append(parts[0])
        elif len(parts) == 2:
            values.setdefault(parts[0], []).append(parts[1])
        else:
            raise invalid_query([{"field": "q", "detail":
                                  f"Query element {element!r} can only contain 1 ':'"}])
    problems = [{"field": key, "detail": f"{key!r} is not a valid query param"}
                for key in values if key not in ("owner", "organization", "status")]
    for key, given in values.items():
        if key in ("owner", "organization", "status") and len(given) > 1:
            problems.append({"field": key, "detail": f"Query param {key!r} provided more "
                                                     "than once"})
    status = (values.get("status") or [None])[0]
    if status is not None and status not in STATUSES:
        problems.append({"field": "status", "detail": f"Query param 'status' has invalid "
                         f"value {status!r}: one of {', '.join(STATUSES)}"})
    if problems:
        raise invalid_query(problems)
    return Filter(owner=(values.get("owner") or [None])[0],
                  organization=(values.get("organization") or [None])[0], status=status)


def check_filter(found: Filter, caller: Caller) -> None:
    """The owner and organization a caller may list: theirs (a user sees only their own
    tasks, and taskfn's users are not listed, so any other user is unknown to them) and
    the one organization."""
    problems = []
    if found.owner is not None and not is_caller(found.owner, caller):
        problems.append({"field": "owner", "detail": f"Query param 'owner' has invalid "
                         f"value: user {found.owner!r} does not exist"})
    if found.organization is not None and found.organization not in (
            ORGANIZATION_NAME, ORGANIZATION_ID):
        problems.append({"field": "organization", "detail": "Query param 'organization' "
                         f"has invalid value: organization {found.organization!r} does "
                         "not exist"})
    if problems:
        raise invalid_query(problems)


# --- views -----------------------------------------------------------------------------------


def rfc3339(ns: int) -> str:
    """A time as Go's time.Time marshals it (RFC 3339, UTC, nanoseconds)."""
    moment = datetime.fromtimestamp(ns // SECOND_NS, UTC)
    fraction = f"{ns % SECOND_NS:09d}".rstrip("0")  # trimmed, as RFC3339Nano writes it
    return f"{moment:%Y-%m-%dT%H:%M:%S}{'.' + fraction if fraction else ''}Z"


def state_entry(task: TaskRecord) -> dict[str, Any] | None:
    """current_state: the function's last report, or null before any."""
    if not task.state_json:
        return None
    report = json.loads(task.state_json)
    return {"timestamp": rfc3339(int(report["at"])), "state": report["state"],
            "message": report.get("message", ""), "uri": report.get("uri", "")}


def task_view(task: TaskRecord, function: FunctionRecord | None) -> dict[str, Any]:
    """The SDK's Task, every field under its JSON name. taskfn has no workspaces: the ids
    the SDK keeps as NullUUID or pointers are null; the workspace's status is the task's."""
    status = status_of(task)
    view: dict[str, Any] = {
        "id": task.task_guid,
        "organization_id": ORGANIZATION_ID,
        "owner_id": user_id(task.owner),
        "owner_name": task.owner,
        "name": task.agent_name,
        "display_name": task.agent_display_name,
        "template_id": id_uuid(task.function_id),
        "template_version_id": id_uuid(task.build_id),
        "template_name": function.name if function else "",
        "template_display_name": function.name if function else "",
        "template_icon": "",
        "workspace_id": None,
        "workspace_name": "",
        "workspace_agent_id": None,
        "workspace_agent_lifecycle": None,
        "workspace_agent_health": None,
        "workspace_app_id": None,
        "initial_prompt": task.initial_prompt,
        "status": status,
        "current_state": state_entry(task),
        "created_at": rfc3339(task.created_at),
        "updated_at": rfc3339(task.updated_at),
    }
    if status in WORKSPACE_STATUS:
        view["workspace_status"] = WORKSPACE_STATUS[status]
    if task.turn:
        view["workspace_build_number"] = task.turn
    return view


def build_view(task: TaskRecord, transition: str) -> dict[str, Any]:
    """What pause and resume answer: {workspace_build: {id, transition, status,
    created_at}} and, as older servers sent it, workspace_build_id. The build is the
    pause or resume itself (its id derived from the task and the moment)."""
    at = task.updated_at
    build_id = str(uuid.uuid5(_NAMESPACE, f"build:{task.task_guid}:{transition}:{at}"))
    build = {"id": build_id, "transition": transition,
             "status": "stopped" if transition == "stop" else "running",
             "created_at": rfc3339(at), "build_number": task.turn,
             "template_version_id": id_uuid(task.build_id)}
    return {"workspace_build": build, "workspace_build_id": build_id}


def logs_view(entries: list[dict[str, Any]], *, snapshot: bool,
              snapshot_at: int = 0) -> dict[str, Any]:
    view: dict[str, Any] = {"logs": [
        {"id": entry["id"], "content": entry["content"], "type": entry["type"],
         "time": entry["time"]} for entry in entries]}
    if snapshot:
        view["snapshot"] = True
        if snapshot_at:
            view["snapshot_at"] = rfc3339(snapshot_at)
    return view


# --- presets (taskfn's extension) --------------------------------------------------------------

PRESET_NAME_MAX = 64


@dataclass(frozen=True)
class PresetFields:
    name: str
    timeout: int
    mem_size: int
    input: str


def _bounded(values: dict[str, Any], name: str, low: int, high: int) -> int:
    """An integer field: 0 (the function's own) or within [low, high]."""
    value = values.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not (
            value == 0 or low <= value <= high):
        raise with_validations(InvalidRequest("Invalid preset."), [{
            "field": name, "detail": f"must be 0 (the function's own) or {low} to {high}"}])
    return value


def parse_preset(values: dict[str, Any]) -> PresetFields:
    """A preset as POST and PUT give it: a name (1-64 characters), capabilities (timeout in
    s, mem_size in MB; 0 keeps the function's) and the input a create without one gets."""
    name = string_field(values, "name")
    if not 0 < len(name) <= PRESET_NAME_MAX:
        raise with_validations(InvalidRequest("Invalid preset."), [{
            "field": "name", "detail": f"must be 1 to {PRESET_NAME_MAX} characters"}])
    default = string_field(values, "input")
    if len(default.encode("utf-8")) > INPUT_MAX:
        raise with_validations(InvalidRequest("Invalid preset."), [{
            "field": "input", "detail": f"must be at most {INPUT_MAX} bytes"}])
    return PresetFields(name=name, timeout=_bounded(values, "timeout", 10, 120),
                        mem_size=_bounded(values, "mem_size", 1, 2048), input=default)


def preset_view(preset: Any) -> dict[str, Any]:
    return {"id": preset.id, "name": preset.name, "timeout": preset.timeout,
            "mem_size": preset.mem_size, "input": preset.input_default,
            "created_at": rfc3339(preset.created_at), "updated_at": rfc3339(preset.updated_at)}
