"""fastlane's jobs API (reference/fastlane.md, docs/design/jobs-api.md): its error body
{error, operation}, the enqueue payload checked in upstream's order (plain-text 400s), env
masking, the pagination object and the whole-word search index's words. Pure: no I/O."""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response

from taskfn import cron
from taskfn.api import json_response
from taskfn.errors import InvalidRequest, PayloadTooLarge, TaskfnError
from taskfn.outbound import check_url_shape

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


class PlainBadRequest(InvalidRequest):
    """An enqueue route's 400: fastlane answers those as plain text, not JSON."""


def error_response(error: TaskfnError, operation: str = "") -> Response:
    """fastlane's JSON error (the message, and the operation that failed); the enqueue
    routes' refusals as plain text."""
    if isinstance(error, PlainBadRequest | PayloadTooLarge):
        return Response(status_code=error.status, content_type="text/plain; charset=utf-8",
                        body=error.message)
    message = f"{error.message} ({error.detail})" if error.detail else error.message
    return json_response(error.status, {"error": message, "operation": operation})


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
    try:
        shlex.split(command)
    except ValueError as error:
        raise _plain(f"command cannot be split into words: {error}.") from None
    envs = body.get("envs") or {}
    if not isinstance(envs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in envs.items()):
        raise _plain("envs must be an object of strings.")
    metadata = body.get("metadata")
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
        start_in_s=parse_start_in(body["startIn"]) if body.get("startIn") else None,
        cron=_cron(body.get("cron") or None),
        webhooks=_hooks(body.get("webhooks"), "webhooks", _webhook),
        notify=_hooks(body.get("notify"), "notify", _address),
        additional_dns=_dns(body.get("additionalDNSEntries")),
    )


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
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise _plain(f"{where} headers must be an object of strings.")
    retries = _integer(item.get("retries", 0), f"{where} retries", 0, WEBHOOK_RETRIES_MAX)
    return Webhook(item["url"], dict(headers), retries)


def _address(item: Any, where: str) -> str:
    if not isinstance(item, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", item):
        raise _plain(f"{where} entries must be e-mail addresses.")
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


def words(task_id: str) -> frozenset[str]:
    """The whole words a task (group) id is found by: its runs of letters and digits, lower
    case (`build-2026_Report` → build, 2026, report)."""
    return frozenset(_WORD.findall(task_id.lower()))
