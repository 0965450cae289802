"""fastlane's jobs API (reference/fastlane.md, docs/design/jobs-api.md): its error body
{error, operation}, the enqueue payload checked in upstream's order (plain-text 400s), env
masking, the pagination object and the whole-word search index's words. Pure: no I/O."""

from __future__ import annotations

import json
import math
import re
import shlex
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from taskfn import api, cron
from taskfn.adapters import fastlane_stream
from taskfn.api import json_response
from taskfn.errors import InvalidRequest, PayloadTooLarge, TaskfnError, Unauthenticated
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller
from taskfn.outbound import check_url_shape
from taskfn.powertools import APIGatewayHttpResolver, Response
from taskfn.stores.jobs import GROUP_ID_MAX, valid_group_id

if TYPE_CHECKING:
    from taskfn.services.jobs import Enqueued, Execution, Status
    from taskfn.services.livelogs import LiveLogs
    from taskfn.stores.jobs import GroupRecord, JobRecord

ENQUEUE_BODY_MAX = 128 * 1024
COMMAND_MAX = 4096
TIMEOUT_MAX_S = 1800  # upstream's cap, and the default
RETRIES_MAX = 8  # 2^8 s is the longest back-off an SQS delay (15 min) carries
WEBHOOK_RETRIES_MAX = 10
PER_PAGE = 10
HOOK_EVENTS = ("succeeds", "fails", "finishes")
_MASKED = re.compile(r"password|key|secret|client_id", re.IGNORECASE)
_START_IN = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() takes "²", int() does not
_WORD = re.compile(r"[0-9a-z]+")
HOOK_HEADERS_MAX = 20
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")  # RFC 9110's token
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,8192}")  # what HTTP/1.1 carries (latin-1)


class PlainBadRequest(InvalidRequest):
    """An enqueue route's 400: fastlane answers those as plain text, not JSON."""


def error_response(error: TaskfnError, operation: str = "") -> Response:
    """fastlane's JSON error (the message, and the operation that failed: the error's own
    when it names one, else the route's); the enqueue routes' refusals as plain text."""
    if isinstance(error, PlainBadRequest | PayloadTooLarge):
        return Response(status_code=error.status, content_type="text/plain; charset=utf-8",
                        body=error.message)
    message = f"{error.message} ({error.detail})" if error.detail else error.message
    headers = {"WWW-Authenticate": 'Basic realm="taskfn"'} if error.status == 401 else None
    return json_response(error.status, {"error": message,
                                        "operation": getattr(error, "operation", operation)},
                         headers)


def errors_of(operation: str) -> Any:
    """The error shape of a route whose failures name `operation` (upstream's names)."""
    return lambda error: error_response(error, operation)


def enqueue_errors_of(operation: str) -> Any:
    """The enqueue routes' error shape: every 400 and 413 as plain text, as upstream answers
    them; the others as JSON."""
    def respond(error: TaskfnError) -> Response:
        if error.status in (400, 413) and not isinstance(error, PlainBadRequest):
            text = f"{error.message} ({error.detail})" if error.detail else error.message
            return error_response(PlainBadRequest(text), operation)
        return error_response(error, operation)

    return respond


def in_operation[E: TaskfnError](error: E, operation: str) -> E:
    """`error`, naming another operation than its route's (upstream's own slips, kept)."""
    error.operation = operation  # type: ignore[attr-defined]
    return error


# --- the enqueue payload -----------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    retries: int = 0


@dataclass(frozen=True)
class JobPayload:
    """A job as POST /tasks/<t> or PUT /tasks/<t>/jobs/<j> gives it, checked."""

    image: str
    command: str
    envs: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    timeout: int = TIMEOUT_MAX_S
    expiration: float | None = None
    start_at: float | None = None
    start_in_s: int | None = None
    cron: str | None = None
    webhooks: dict[str, tuple[Webhook, ...]] = field(default_factory=dict)
    notify: dict[str, tuple[str, ...]] = field(default_factory=dict)
    additional_dns: tuple[tuple[str, str], ...] = ()

    @property
    def scheduled(self) -> bool:
        return self.start_at is not None or self.start_in_s is not None or bool(self.cron)


def _plain(text: str) -> PlainBadRequest:
    return PlainBadRequest(text)


def parse_enqueue(raw: bytes) -> JobPayload:
    """Upstream's checks in its order (size, JSON, image and command, one schedule at most),
    then taskfn's own type checks, each naming its field: every refusal before any write."""
    if len(raw) > ENQUEUE_BODY_MAX:
        raise PayloadTooLarge("request body too large")
    try:  # NaN and Infinity are not JSON: refused as unparsable
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise _plain("Failed to enqueue task because JSON body could not be parsed.")
    image, command = body.get("image"), body.get("command")
    if not image or not command:
        raise _plain("image and command must be filled in the request.")
    if sum(1 for name in ("startAt", "startIn", "cron") if body.get(name)) > 1:
        raise _plain("Only ONE of 'startAt', 'startIn' and 'cron' should be in the request.")
    if not isinstance(image, str) or len(image) > 512:
        raise _plain("image must be a string of at most 512 characters.")
    if not isinstance(command, str) or len(command) > COMMAND_MAX:
        raise _plain(f"command must be a string of at most {COMMAND_MAX} characters.")
    if not _text(image) or not _text(command):
        raise _plain("image and command must be text without NUL characters.")
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise _plain(f"command cannot be split into words: {error}.") from None
    if not argv:
        raise _plain("image and command must be filled in the request.")
    envs = body.get("envs") or {}
    if not isinstance(envs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _text(k) and _text(v)
            for k, v in envs.items()):
        raise _plain("envs must be an object of strings (text without NUL characters).")
    metadata = body.get("metadata")
    if _depth(metadata) > METADATA_DEPTH_MAX:
        raise _plain(f"metadata must be nested at most {METADATA_DEPTH_MAX} levels deep.")
    retries = _integer(body.get("retries", 0), "retries", 0, RETRIES_MAX)
    timeout = body.get("timeout", TIMEOUT_MAX_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
            0 < timeout < math.inf):  # 1e400 parses as inf
        raise _plain("timeout must be a positive number of seconds.")
    return JobPayload(
        image=image, command=command, envs=dict(envs),
        metadata=metadata if isinstance(metadata, dict) else {},  # upstream ignores others
        retries=retries, timeout=min(math.ceil(timeout), TIMEOUT_MAX_S),
        expiration=_moment(body.get("expiration"), "expiration"),
        start_at=_moment(body.get("startAt") or None, "startAt"),
        start_in_s=_start_in(body["startIn"]) if body.get("startIn") else None,
        cron=_cron(body.get("cron") or None),
        webhooks=_hooks(body.get("webhooks"), "webhooks", _webhook),
        notify=_hooks(body.get("notify"), "notify", _address),
        additional_dns=_dns(body.get("additionalDNSEntries")),
    )


METADATA_DEPTH_MAX = 32  # the views and webhook bodies nest it further: Python's JSON recurses


def _depth(value: Any) -> int:
    """How deep a JSON value nests (0 for a scalar), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if depth + 1 > METADATA_DEPTH_MAX:
                return depth + 1
            stack.extend((child, depth + 1) for child in (
                item.values() if isinstance(item, dict) else item))
    return deepest


def _text(value: str) -> bool:
    """Text a process can be given: encodable (no lone surrogates) and without NUL."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


START_IN_MAX_S = 366 * 86400  # a one-shot at most a year ahead


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _plain(f"{name} must be an integer from {low} to {high}.")
    return value


def _moment(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value < 1e11):
        raise _plain(f"{name} must be a unix time in seconds.")
    return float(value)


def _start_in(value: Any) -> int:
    seconds = parse_start_in(value)
    if seconds > START_IN_MAX_S:
        raise _plain(f"startIn must be at most {START_IN_MAX_S} seconds (a year).")
    return seconds


def parse_start_in(value: Any) -> int:
    """startIn as fastlane writes it ("2h30m50s", "5m", "10s") or plain seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return int(text)
        found = _START_IN.fullmatch(text) if len(text) <= 40 else None
        if text and found:
            hours, minutes, seconds = (int(part or 0) for part in found.groups())
            return hours * 3600 + minutes * 60 + seconds
    raise _plain("startIn must be a duration such as 2h30m50s, 5m or 10s.")


def _cron(value: Any) -> str | None:
    if value is None:
        return None
    try:
        cron.parse(value)
    except InvalidRequest as error:
        detail = f": {error.detail}" if error.detail else ""
        raise _plain(f"{error.message}{detail}.") from None
    return value


def _hooks[T](value: Any, name: str, entry: Any) -> dict[str, tuple[T, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not set(value) <= set(HOOK_EVENTS):
        raise _plain(f"{name} must be an object of lists: {', '.join(HOOK_EVENTS)}.")
    found: dict[str, tuple[T, ...]] = {}
    for event, entries in value.items():
        if not isinstance(entries, list) or len(entries) > 10:
            raise _plain(f"{name}.{event} must be a list of at most 10 entries.")
        found[event] = tuple(entry(item, f"{name}.{event}") for item in entries)
    return found


def _webhook(item: Any, where: str) -> Webhook:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise _plain(f"{where} entries must be objects with a url.")
    try:
        check_url_shape(item["url"])
    except InvalidRequest as error:
        raise _plain(f"{where}: {error.message}.") from None
    headers = item.get("headers") or {}
    if not isinstance(headers, dict) or len(headers) > HOOK_HEADERS_MAX or not all(
            isinstance(k, str) and _HEADER_NAME.fullmatch(k) and isinstance(v, str)
            and _HEADER_VALUE.fullmatch(v) for k, v in headers.items()):
        raise _plain(f"{where} headers must be an object of at most {HOOK_HEADERS_MAX} "
                     "HTTP header names to values (no control characters).")
    retries = _integer(item.get("retries", 0), f"{where} retries", 0, WEBHOOK_RETRIES_MAX)
    return Webhook(item["url"], dict(headers), retries)


ADDRESS_MAX = 254  # RFC 5321's longest path


def _address(item: Any, where: str) -> str:
    """An e-mail address: local@domain with a dot inside the domain; checked without a
    backtracking pattern (a long run of dots must not cost seconds)."""
    ok = isinstance(item, str) and 0 < len(item) <= ADDRESS_MAX and not any(
        ch.isspace() for ch in item) and item.count("@") == 1
    if ok:
        local, _, domain = item.partition("@")
        ok = bool(local) and "." in domain.strip(".") and not domain.startswith(".") \
            and not domain.endswith(".")
    if not ok:
        raise _plain(f"{where} entries must be e-mail addresses (at most {ADDRESS_MAX} "
                     "characters).")
    return item


def _dns(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _plain("additionalDNSEntries must be an object of host to IP address.")
    return tuple(sorted(value.items()))


# --- views --------------------------------------------------------------------------------


def masked(value: Any) -> Any:
    """envs as job details show them: the value of a key that names a password, key, secret
    or client id is "***", at any depth."""
    if isinstance(value, dict):
        return {k: "***" if _MASKED.search(str(k)) else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def page_number(text: str | None) -> int:
    """?page=: a positive integer (1 when absent)."""
    if text is None or text == "":
        return 1
    if not _DIGITS.fullmatch(text) or int(text) < 1:
        raise InvalidRequest("Tasks pagination page param should be a positive integer.")
    return int(text)


def pagination(items: list[dict[str, Any]], *, total: int, page: int, base_url: str,
               path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    """The nine keys of fastlane's pagination object, with absolute URLs."""
    pages = math.ceil(total / PER_PAGE) if total else 0

    def url(number: int) -> str:
        return f"{base_url}{path}?{urlencode({**(query or {}), 'page': number})}"

    has_next, has_prev = page < pages, page > 1
    return {"items": items, "total": total, "page": page, "pages": pages,
            "perPage": PER_PAGE, "hasNext": has_next, "hasPrev": has_prev,
            "nextUrl": url(page + 1) if has_next else None,
            "prevUrl": url(page - 1) if has_prev else None}


WORDS_MAX = 32  # of a task id's words, the index keeps the first 32 (one transaction)
QUERY_WORDS_MAX = 8


def words(task_id: str) -> frozenset[str]:
    """The whole words a task (group) id is found by: its runs of letters and digits, lower
    case (`build-2026_Report` → build, 2026, report), the first WORDS_MAX of them."""
    return frozenset(list(dict.fromkeys(_WORD.findall(task_id.lower())))[:WORDS_MAX])


def query_words(query: str) -> frozenset[str]:
    """A search's words, found as a task id's are; any of them matches (as Mongo's $text)."""
    return frozenset(list(dict.fromkeys(_WORD.findall(query.lower())))[:QUERY_WORDS_MAX])


# --- routes ------------------------------------------------------------------------------


def route(app: APIGatewayHttpResolver, method: str, path: str, **keywords: Any) -> Any:
    """A route declared with and without its trailing '/' (upstream's paths end in '/' and
    its POST and PUT routes take both), both documented (the second as `<id>Slash`)."""
    def register(function: Any) -> Any:
        app.route(path, method, **keywords)(function)
        app.route(path + "/", method, **{
            **keywords, "operation_id": keywords["operation_id"] + "Slash"})(function)
        return function

    return register


# --- the request ---------------------------------------------------------------------------


def followed(app: APIGatewayHttpResolver, live: LiveLogs, task_id: str, job_id: str,
             execution_id: str = "") -> tuple[str, str, str, str]:
    """The caller's job or execution (ids as the client meant them) and the ticketed
    WebSocket URL that follows it: what the stream page and the redirect both answer with."""
    task_id, job_id, execution_id = (path_id(task_id), path_id(job_id), path_id(execution_id))
    ticket = live.admit(caller(app), task_id, job_id, execution_id)
    url = fastlane_stream.socket_url(live.settings.ws_url, task_id, job_id, execution_id, ticket)
    return task_id, job_id, execution_id, url


def path_id(raw: str) -> str:
    """A path segment as the client meant it (API Gateway passes the raw path on)."""
    return unquote(raw)


def plain_group_id(raw: str) -> str:
    """An enqueue's group id, refused as plain text when it cannot be one."""
    task_id = unquote(raw)
    if not valid_group_id(task_id):
        raise _plain(f"The task id must be 1 to {GROUP_ID_MAX} characters, without '#', "
                     "'/' or control characters.")
    return task_id


def job_uuid(raw: str) -> str:
    """A PUT's job id, normalised as upstream does (UUID(...)): any form Python's UUID reads,
    answered in its canonical form."""
    try:
        return str(uuid.UUID(unquote(raw)))
    except ValueError:
        raise _plain(f"The job_id {unquote(raw)} is not a valid UUID4. "
                     "All job IDs must be UUID4.") from None


def caller(app: APIGatewayHttpResolver) -> Caller:
    """The caller (a user's or admin's token: HTTP Basic with the token as the password, as
    fastlane clients send it, or taskfn's own header); 401 in fastlane's words otherwise."""
    try:
        return api.caller(app)
    except Unauthenticated:
        raise Unauthenticated("Authentication required.") from None


def links(app: APIGatewayHttpResolver) -> Links:
    event = app.current_event
    return Links(base_url(dict(event.headers or {}), event.request_context.domain_name or ""))


def request_ip(app: APIGatewayHttpResolver) -> str:
    """API Gateway's own view of the client's address (never a header the client sets)."""
    return app.current_event.request_context.http.source_ip or ""


# --- answers ------------------------------------------------------------------------------

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")


def base_url(headers: dict[str, str], domain_name: str) -> str:
    """Where the client reached the API: absolute URLs in answers are built on it, as
    Flask's url_for(_external=True) does. A Host header that is not a host[:port] is
    replaced by API Gateway's own domain name."""
    host = headers.get("host", "")
    if not _HOST.fullmatch(host):
        host = domain_name
    proto = headers.get("x-forwarded-proto", "https")
    return f"{proto if proto in ('http', 'https') else 'https'}://{host}"


@dataclass(frozen=True)
class Links:
    """Upstream's url_for forms, absolute, each ending in '/'."""

    base: str

    def task(self, task_id: str) -> str:
        return f"{self.base}/tasks/{quote(task_id, safe='')}/"

    def job(self, task_id: str, job_id: str) -> str:
        return f"{self.task(task_id)}jobs/{job_id}/"

    def execution(self, task_id: str, job_id: str, execution_id: str) -> str:
        return f"{self.job(task_id, job_id)}executions/{execution_id}/"

    def stop(self, task_id: str, job_id: str) -> str:
        return f"{self.job(task_id, job_id)}stop/"


def iso(ns: int) -> str | None:
    """A time as upstream shows it: naive UTC datetime.isoformat(); None when unset."""
    if not ns:
        return None
    return datetime.fromtimestamp(ns / SECOND_NS, UTC).replace(tzinfo=None).isoformat()


# The container's own states before its command runs (ECS lastStatus).
_PULLING = frozenset({"", "PROVISIONING", "PENDING", "ACTIVATING"})
# A finished execution's status word by its outcome; any other outcome reads "failed"
# (a user stop too: fastlane marks it failed and never sets "stopped").
FINISHED_WORDS = {"succeeded": "done", "timedout": "timedout", "expired": "expired"}


def status_word(execution: Execution) -> str:
    """fastlane's execution status, from the one task record: enqueued, pulling, running,
    done, failed, timedout or expired."""
    if execution.state is State.PENDING:
        return "enqueued"
    if execution.state is State.RUNNING:
        return "pulling" if execution.container_status in _PULLING else "running"
    return FINISHED_WORDS.get(execution.outcome, "failed")


def error_text(execution: Execution) -> str:
    """An execution's `error` (and its stderr route): the command's stderr, and the
    platform's reason when the command did not decide the outcome by its exit (a timeout,
    an expiry, a stop, a container that never ran)."""
    exited = execution.exit_code is not None and execution.outcome in ("succeeded", "failed")
    if not execution.reason or exited:
        return execution.stderr
    return f"{execution.stderr}\n{execution.reason}" if execution.stderr else execution.reason


def group_item(group: GroupRecord, links: Links) -> dict[str, Any]:
    return {"taskId": group.task_id, "createdAt": iso(group.created_at),
            "lastModifiedAt": iso(group.last_modified_at), "url": links.task(group.task_id),
            "jobsCount": group.jobs_count}


def enqueue_answer(enqueued: Enqueued, links: Links) -> dict[str, Any]:
    task_id, job_id, execution_id = enqueued.task_id, enqueued.job_id, enqueued.execution_id
    return {"taskId": task_id, "jobId": job_id, "executionId": execution_id,
            "executionUrl": links.execution(task_id, job_id, execution_id)
            if execution_id else None,
            "queueJobId": enqueued.queue_job_id, "jobUrl": links.job(task_id, job_id),
            "taskUrl": links.task(task_id)}


def job_metadata(job: JobRecord) -> dict[str, Any]:
    """The job's metadata as upstream keeps it, envs masked."""
    notify = json.loads(job.notify_json)
    webhooks = json.loads(job.webhooks_json)
    metadata: dict[str, Any] = {
        "retries": job.retries,
        "notify": {event: notify.get(event, []) for event in HOOK_EVENTS},
        "webhooks": {event: webhooks.get(event, []) for event in HOOK_EVENTS},
        "retry_count": 0,
        "expiration": job.expiration or None,
        "timeout": job.timeout,
        "envs": masked(json.loads(job.envs_json)),
        "additional_dns_entries": json.loads(job.dns_json),
    }
    custom = json.loads(job.metadata_json)
    if custom:
        metadata["custom"] = custom
    if job.cron:
        metadata["cron"] = job.cron
    if job.schedule_id:
        metadata["enqueued_id"] = job.schedule_id
    return metadata


VIEW_TEXT_MAX = 48 * 1024  # of an output in a view: this many characters once JSON-encoded


def _fit(text: str, budget: int = VIEW_TEXT_MAX) -> tuple[str, bool]:
    """`text` cut so that its JSON encoding fits `budget` (a control character is six
    characters there: 20 executions of them must still fit a Lambda answer), and whether it
    was cut."""
    size = len(json.dumps(text))
    if size <= budget:
        return text, False
    while size > budget:
        text = text[:max(0, len(text) * budget // size - 8)]
        size = len(json.dumps(text))
    return text, True


def execution_view(execution: Execution, links: Links, *, url: bool = False
                   ) -> dict[str, Any]:
    """An execution as upstream's to_dict(include_log, include_error) gives it; outputs cut
    for the details carry a pointer to their own route."""
    pointer = execution.pointer
    here = links.execution(pointer.task_id, pointer.job_id, pointer.execution_id)
    (log, log_cut), (error, error_cut) = (_fit(execution.stdout),
                                          _fit(error_text(execution)))
    if log_cut or "stdout" in execution.truncated:
        log += f"\n...(truncated: see {here}stdout)"
    if error_cut or "stderr" in execution.truncated:
        error += f"\n...(truncated: see {here}stderr)"
    view: dict[str, Any] = {
        "executionId": pointer.execution_id, "createdAt": iso(pointer.created_at),
        "requestIPAddress": execution.request_ip, "startedAt": iso(execution.started_at),
        "finishedAt": iso(execution.finished_at), "image": execution.image,
        "command": execution.command,
        "metadata": {"webhookDispatch": list(pointer.webhook_dispatch)}
        if pointer.webhook_dispatch else {},
        "status": status_word(execution),
        "exitCode": execution.exit_code, "log": log, "error": error}
    if url:
        view["url"] = here
    return view


def job_view(job: JobRecord, executions: list[Execution], links: Links) -> dict[str, Any]:
    """Job details: upstream's job.to_dict with the job's id (which upstream leaves out)
    and its 20 newest executions, each with its url."""
    return {"task": {"id": job.task_id, "url": links.task(job.task_id)},
            "job": {"id": job.job_id, "createdAt": iso(job.created_at), "image": job.image,
                    "command": job.command, "lastModifiedAt": iso(job.last_modified_at),
                    "taskId": job.task_id, "scheduled": bool(job.schedule_id),
                    "executionCount": job.execution_count,
                    "requestIPAddress": job.request_ip, "metadata": job_metadata(job),
                    "executions": [execution_view(e, links, url=True) for e in executions]}}


def execution_details(job: JobRecord, execution: Execution, links: Links) -> dict[str, Any]:
    return {"task": {"id": job.task_id, "url": links.task(job.task_id)},
            "job": {"id": job.job_id, "url": links.job(job.task_id, job.job_id)},
            "execution": execution_view(execution, links)}


def job_summary(job: JobRecord, links: Links) -> dict[str, Any]:
    """What stop and retry of a job answer."""
    return {"taskId": job.task_id, "jobId": job.job_id,
            "jobUrl": links.job(job.task_id, job.job_id), "taskUrl": links.task(job.task_id)}


def stopped_execution(job: JobRecord, execution_id: str, links: Links) -> dict[str, Any]:
    """What stop of an execution answers."""
    return {"task": {"id": job.task_id, "url": links.task(job.task_id)},
            "job": {"id": job.job_id, "url": links.job(job.task_id, job.job_id)},
            "execution": {"id": execution_id,
                          "url": links.execution(job.task_id, job.job_id, execution_id)}}


VERSION = "taskfn-0.1.0"


def status_view(status: Status, links: Links) -> dict[str, Any]:
    """GET /status: the caller's groups and jobs, its scheduled jobs soonest first with their
    next times, its running containers, and the platform's queues. No hosts: containers run
    on ECS (or locally); a running one's host is the back-end's name, its id the task's ARN."""
    scheduled = []
    for job, when in status.scheduled:
        view = job_view(job, [], links)["job"]
        del view["executions"], view["taskId"]
        scheduled.append({**view, "nextScheduledAt": when.replace(tzinfo=None).isoformat()
                          if when else None, "url": links.job(job.task_id, job.job_id),
                          "stopUrl": links.stop(job.task_id, job.job_id),
                          "task": {"id": job.task_id, "url": links.task(job.task_id)}})
    soonest = next((when for _, when in status.scheduled if when), None)
    return {
        "hosts": [], "containers": {"running": [
            {"host": status.executor, "port": None, "id": run.container_ref}
            for run in status.running]},
        "queues": {"jobs": {"length": status.queues.get("jobs", 0)},
                   "monitor": {"length": status.queues.get("monitor", 0)},
                   "webhooks": {"length": status.queues.get("webhooks", 0)},
                   "notify": {"length": status.queues.get("notify", 0)},
                   "scheduled": {"length": len(scheduled),
                                 "nextTimeStamp": soonest.timestamp() if soonest else None,
                                 "nextHumanReadableDate": soonest.replace(
                                     tzinfo=None).isoformat() if soonest else None}},
        "tasks": {"count": status.counts["groups"]},
        "jobs": {"count": status.counts["jobs"], "scheduled": scheduled},
        "fastlane": {"version": VERSION, "executor": status.executor},
    }


OUTPUTS = ("stdout", "stderr", "logs")


def output_text(execution: Execution, which: str) -> str:
    """stdout, stderr or logs (stdout, "-=-", stderr) once the execution has finished; ""
    before (enqueued, pulling or running), as upstream."""
    if not execution.finished:
        return ""
    if which == "stdout":
        return execution.stdout
    if which == "stderr":
        return error_text(execution)
    return f"{execution.stdout}\n-=-\n{error_text(execution)}"


def output_response(execution: Execution, which: str) -> Response:
    return Response(status_code=200, content_type="text/plain; charset=utf-8",
                    body=output_text(execution, which),
                    headers={"Fastlane-Exit-Code": str(execution.exit_code)})
