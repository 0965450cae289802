"""The GreenCloud platform API (reference/greencloud.md): request parsing, views of the
domain records in GreenCloud's field names, and its error body {message, detail?}."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from taskfn import outbound, userjson
from taskfn.api import json_response
from taskfn.errors import InvalidRequest, TaskfnError
from taskfn.models import BuildRecord, FunctionRecord, TaskRecord, TaskSummary, answer_status
from taskfn.powertools import Response
from taskfn.services.functions import FunctionPatch, NewFunction
from taskfn.services.tags import NewTag
from taskfn.services.tasks import TaskResponse
from taskfn.stores.tags import TagRecord
from taskfn.stores.tasks import STATUS_WORDS, TaskStatus

if TYPE_CHECKING:  # the build service's imports are not every handler's
    from taskfn.services.builds import BuildPage
    from taskfn.services.exports import Export, ExportFilter, ExportRow


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
    model_config = ConfigDict(defer_build=True, extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9]+$", min_length=1, max_length=64)
    description: str = Field("", max_length=80)
    lang: Literal["GO", "PY", "JS", "CS", "RB", "RS", "HTTP"] = "PY"
    tag: list[str] = Field(default_factory=list, max_length=20)
    type: str = Field("code", max_length=32)
    source: str | None = Field(None, max_length=256 * 1024)
    # lang HTTP only (taskfn's extension): each task's event is POSTed here.
    url: str | None = Field(None, max_length=outbound.MAX_URL_CHARS)

    @field_validator("lang", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def parse_new_function(body: dict[str, Any]) -> NewFunction:
    try:
        request = CreateFunctionRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid function", validation_detail(error)) from error
    if request.lang not in ("PY", "HTTP"):
        raise InvalidRequest(
            f"lang {request.lang} is not supported yet", "taskfn runs PY and HTTP functions"
        )
    if (request.lang == "HTTP") != (request.url is not None):
        raise InvalidRequest("invalid function", "lang HTTP needs a url; other langs have none")
    if request.lang == "HTTP" and request.source is not None:
        raise InvalidRequest("invalid function", "an HTTP function has a url, not source")
    return NewFunction(
        name=request.name,
        description=request.description,
        lang=request.lang.lower(),
        type=request.type,
        tags=tuple(request.tag),
        source=request.source,
        url=outbound.check_url_shape(request.url) if request.url is not None else "",
    )


class UpdateFunctionRequest(BaseModel):
    """PATCH /v1/function/{id}: the fields given change, with create's bounds; `tag`
    replaces the function's tags ([] removes them all)."""

    model_config = ConfigDict(defer_build=True, extra="ignore")

    name: str = Field(None, pattern=r"^[A-Za-z0-9]+$", min_length=1, max_length=64)
    description: str = Field(None, max_length=80)
    tag: list[str] = Field(None, max_length=20)


def parse_function_patch(body: dict[str, Any]) -> FunctionPatch:
    """An empty patch (nothing, or only fields it does not know) is a 400 in the service."""
    try:
        given = UpdateFunctionRequest.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise InvalidRequest("invalid function", validation_detail(error)) from error
    tags = given.get("tag")
    return FunctionPatch(name=given.get("name"), description=given.get("description"),
                         tags=tuple(tags) if tags is not None else None)


class CapabilitiesRequest(BaseModel):
    """POST /v1/function/{id}/capabilities: GreenCloud's bounds (networkLatency, which it
    does not bound, in ms up to a minute); exact JSON types, no "10" for 10. Fields left out
    keep their values."""

    model_config = ConfigDict(defer_build=True, extra="ignore")

    timeout: StrictInt = Field(10, ge=10, le=120)
    cpuCount: StrictInt = Field(0, ge=0, le=4)
    memSize: StrictInt = Field(0, ge=0, le=2048)
    networkLatency: StrictInt = Field(0, ge=0, le=60_000)
    privileged: StrictBool = False


def parse_capabilities(body: dict[str, Any]) -> dict[str, Any]:
    """The capabilities given (null is no value: a 400 like any other wrong type)."""
    try:
        return CapabilitiesRequest.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise InvalidRequest("invalid capabilities", validation_detail(error)) from error


# A tag's name: printable ASCII (space to ~), 1 to 64 characters, not only spaces. Its color:
# "#rrggbb" in either case, kept in lower case.
TAG_NAME = r"^[ -~]*[!-~][ -~]*$"
TAG_NAME_MAX = 64
TAG_COLOR = r"^#[0-9A-Fa-f]{6}$"


class CreateTagRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    name: str = Field(pattern=TAG_NAME, min_length=1, max_length=TAG_NAME_MAX)
    color: str | None = Field(None, pattern=TAG_COLOR, description="default #808080")


class UpdateTagRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    name: str = Field(None, pattern=TAG_NAME, min_length=1, max_length=TAG_NAME_MAX)
    color: str = Field(None, pattern=TAG_COLOR)


def parse_new_tag(body: dict[str, Any]) -> NewTag:
    try:
        request = CreateTagRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid tag", validation_detail(error)) from error
    return NewTag(request.name) if request.color is None else NewTag(request.name,
                                                                     request.color)


def parse_tag_patch(body: dict[str, Any]) -> dict[str, str]:
    """{name?, color?} as given; nothing given is a 400 in the service."""
    try:
        return UpdateTagRequest.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise InvalidRequest("invalid tag", validation_detail(error)) from error


def tag_view(tag: TagRecord) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "color": tag.color}


def tags_view(tag_ids: list[str], known: dict[str, TagRecord]) -> list[dict[str, Any]]:
    """A function's tags as objects; a tag deleted since is left out."""
    return [tag_view(known[tag_id]) for tag_id in tag_ids if tag_id in known]


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


def function_view(function: FunctionRecord, *, tags: dict[str, TagRecord],
                  metrics: dict[str, int]) -> dict[str, Any]:
    return {
        "id": function.id,
        "name": function.name,
        "description": function.description,
        "type": function.type,
        "lang": function.lang,
        "tags": tags_view(function.tags, tags),
        "capabilities": function.capabilities.model_dump(),
        "metrics": metrics,
        "buildId": function.build_id,
        "paused": function.paused,
        "createdAt": unix_seconds(function.created_at),
        "url": function.url,
    }


def function_list_item(function: FunctionRecord, *,
                       tags: dict[str, TagRecord]) -> dict[str, Any]:
    return {
        "id": function.id,
        "name": function.name,
        "description": function.description,
        "lang": function.lang,
        "tags": tags_view(function.tags, tags),
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
        # taskfn's extension (triggers): the task whose finish created this one, or null.
        "triggeredBy": task.triggered_by or None,
    }


def task_list_item(task: TaskSummary) -> dict[str, Any]:
    """status is the function's HTTP status, 0 until the task has finished (one a cell
    completed has none: 200, or 500 when it failed, as its /result answers)."""
    return {
        "id": task.task_guid,
        "issued": unix_seconds(task.created_at),
        "progress": task.progress,
        "status": answer_status(task.response_status, task.failed) if task.finished else 0,
    }


# GreenCloud's numbered pages (page ≥ 1, limit 3-999, default 10): the bounds the reference
# gives its schedule and endpoint lists. Its builds page documents none; taskfn uses these.
PAGE_DEFAULT, LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 3, 999, 10
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PageQuery:
    """A numbered page of a list, and the function it is narrowed to (None: every one)."""

    page: int
    limit: int
    function_id: str | None


def _whole(params: dict[str, str], name: str, default: int, low: int,
           high: int | None = None) -> int:
    """An integer query parameter in its bounds: ASCII digits only (no sign, space, "_")."""
    raw = params.get(name)
    if raw is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    try:
        value = int(raw) if _DIGITS.fullmatch(raw) else None
    except ValueError:  # more digits than Python converts
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise InvalidRequest(f"{name} must be an integer {bounds}", f"got {raw[:40]!r}")
    return value


def parse_page_query(params: dict[str, str]) -> PageQuery:
    """page, limit and functionId of a numbered list. A parameter given is checked, empty
    or not: `page=` is a 400 and `functionId=` names no function (404)."""
    return PageQuery(
        page=_whole(params, "page", PAGE_DEFAULT, 1),
        limit=_whole(params, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX),
        function_id=params.get("functionId"),
    )


@dataclass(frozen=True)
class TaskFilters:
    function_id: str | None = None
    status: TaskStatus | None = None


def parse_task_filters(params: dict[str, str]) -> TaskFilters:
    """functionId and status of the task list. status filters on the list's own status
    field: an HTTP status code (100-599), 0 for unfinished tasks, or a word for the outcome
    (case-insensitive): pending (not finished, as 0), succeeded (finished, not failed),
    failed (finished and failed). A function that answered 500 without failing is
    succeeded; one that finished without a response (cancelled, expired) shows 500."""
    raw = params.get("status")
    status: TaskStatus | None = None
    if raw is not None:
        word = raw.lower()
        if word in STATUS_WORDS:
            status = word
        elif _DIGITS.fullmatch(raw) and len(raw) <= 3 and (
                int(raw) == 0 or 100 <= int(raw) <= 599):
            status = int(raw)
        else:
            raise InvalidRequest(
                "status must be an HTTP status code (100-599), 0, pending, succeeded or "
                "failed", f"got {raw[:40]!r}")
    return TaskFilters(function_id=params.get("functionId"), status=status)


def page_view(results: list[dict[str, Any]], *, total: int, limit: int) -> dict[str, Any]:
    """GreenCloud's numbered page: pageCount (0 for an empty list), pageSize (the limit
    asked for), totalCount, results. A page past the last has no results, same counts."""
    return {"pageCount": -(-total // limit), "pageSize": limit, "totalCount": total,
            "results": results}


def build_list_item(build: BuildRecord) -> dict[str, Any]:
    return {
        "id": build.id,
        "functionId": build.function_id,
        "status": build.status.value,
        "arch": build.arch,
        "createdAt": unix_seconds(build.created_at),
    }


def build_page_view(page: BuildPage, *, limit: int) -> dict[str, Any]:
    return page_view([build_list_item(b) for b in page.builds], total=page.total, limit=limit)


def page_headers(cursor: str | None) -> dict[str, str]:
    """GreenCloud lists are bare arrays; the next page's cursor travels in a header."""
    return {"X-Next-Cursor": cursor} if cursor else {}


# What a function may not make the platform's own domain say to a browser sent to a public
# result (GET /gc/{taskId}/result needs no token): no redirects, no cookies, no refresh; and,
# on every result route, nothing that would lift the sandbox (SANDBOXED).
_NOT_REPLAYED_PUBLICLY = frozenset({"location", "set-cookie", "refresh", "content-location",
                                    "content-security-policy", "x-content-type-options"})
SANDBOXED = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
_SANDBOX_NAMES = frozenset(name.lower() for name in SANDBOXED)


def replay(result: TaskResponse, *, public: bool = False) -> Response:
    """The function's own response. Text goes out as text; anything that is not UTF-8 as
    bytes, which API Gateway sends base64-encoded. One too large for a Lambda answer is a 303
    to its body in S3, with the function's status in X-Taskfn-Status (taskfn's extension).
    The body is always sandboxed (`SANDBOXED`): a browser can be sent to the owner's route
    too, with HTTP Basic credentials it cached for the platform's domain, and an HTML result
    (a public endpoint's function echoing its caller, say) must not run script there.
    `public` (no token): the function's headers that would redirect or set cookies on the
    platform's domain are left out as well."""
    dropped = _NOT_REPLAYED_PUBLICLY if public else _SANDBOX_NAMES
    headers = {name: value for name, value in result.headers.items()
               if name.lower() not in dropped}
    result = replace(result, headers={**headers, **SANDBOXED})
    if result.location is not None:
        return Response(status_code=303, body="", headers={
            "Location": result.location, "X-Taskfn-Status": str(result.status),
            "Cache-Control": "no-store"})
    try:
        body: str | bytes = result.body.decode()
    except UnicodeDecodeError:
        body = result.body
    return Response(status_code=result.status, body=body, headers=result.headers)


# --- the CSV export (GET /v1/task/{functionId}/csv) ---------------------------------------

CSV_HEADER = ("ID", "IssuedAt", "Status", "ContentType", "Body")
# OWASP's CSV injection rule: a spreadsheet runs a cell that starts with one of these as a
# formula (and base64 may start with "+"), so such a cell gets a leading single quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CSV_ROWS_PER_CHUNK = 100
CSV_CHUNK_CHARS = 256 * 1024  # or fewer rows, when their bodies are large


@dataclass(frozen=True)
class CsvQuery:
    show_plain: bool
    filters: ExportFilter


def _flag(params: dict[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false", f"got {raw[:40]!r}")
    return raw.lower() == "true"


def _day(params: dict[str, str], name: str) -> date | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError as error:
        raise InvalidRequest(f"{name} must be a date, yyyy-mm-dd",
                             f"got {raw[:40]!r}") from error


def parse_csv_query(params: dict[str, str]) -> CsvQuery:
    """showPlain (true or false, any case; default false), scheduleId (the docs also spell
    it scheduledId: both may be given if they agree), dateSince and dateUntil (UTC days,
    both included). A parameter given is checked, empty or not."""
    from taskfn.services.exports import ExportFilter

    schedules = {params[name] for name in ("scheduleId", "scheduledId") if name in params}
    if len(schedules) > 1:
        raise InvalidRequest("scheduleId and scheduledId differ", "give one of them")
    schedule_id = schedules.pop() if schedules else None
    if schedule_id is not None and not schedule_id:
        raise InvalidRequest("scheduleId must not be empty")
    since, until = _day(params, "dateSince"), _day(params, "dateUntil")
    if since is not None and until is not None and since > until:
        raise InvalidRequest("dateSince is after dateUntil")
    return CsvQuery(show_plain=_flag(params, "showPlain"),
                    filters=ExportFilter(since=since, until=until, schedule_id=schedule_id))


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs (OWASP's CSV injection rule)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def rfc3339(ns: int) -> str:
    """A moment as RFC 3339 in UTC, to the second: 2026-12-02T07:01:02Z."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_body(body: bytes, *, plain: bool) -> str:
    """base64 of the body; with showPlain its text, unless it is not UTF-8 (then base64
    still: a CSV is text, and bytes that are not cannot be told from it otherwise)."""
    if plain:
        try:
            return body.decode()
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode()


def csv_fields(row: ExportRow, *, plain: bool) -> list[str]:
    """A task's cells in CSV_HEADER's order. Status is the function's HTTP status, 0 while
    unfinished (as the task list's status); ContentType and Body "" then."""
    status, content_type, body = 0, "", ""
    if row.response is not None:
        status, content_type = row.response.status, row.response.content_type
        body = csv_body(row.response.body, plain=plain)
    return [csv_cell(cell) for cell in (row.task_id, rfc3339(row.created_at), str(status),
                                        content_type, body)]


def csv_renderer(*, plain: bool) -> Callable[[Iterable[ExportRow]], Iterator[bytes]]:
    """The export's rendering: RFC 4180 (Python's csv: quotes where needed, doubled inside,
    CRLF line ends), UTF-8, the header first, then CSV_ROWS_PER_CHUNK rows a piece, or as
    many as fill CSV_CHUNK_CHARS (so a piece holds at most one large body past it)."""

    def render(rows: Iterable[ExportRow]) -> Iterator[bytes]:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(CSV_HEADER)
        for number, row in enumerate(rows, 1):
            writer.writerow(csv_fields(row, plain=plain))
            if number % CSV_ROWS_PER_CHUNK == 0 or text.tell() >= CSV_CHUNK_CHARS:
                yield text.getvalue().encode()
                text.seek(0)
                text.truncate()
        yield text.getvalue().encode()

    return render


def csv_answer(function_id: str, export: Export) -> Response:
    """The CSV as an attachment, or a 303 to the uploaded file (a presigned GET)."""
    headers = {"Cache-Control": "no-store"}
    if export.location is not None:
        return Response(status_code=303, body="", headers={**headers,
                                                           "Location": export.location})
    return Response(status_code=200, body=(export.body or b"").decode(), headers={
        **headers, "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{function_id}.csv"'})
