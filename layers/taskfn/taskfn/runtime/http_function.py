"""HTTP functions (lang "http", taskfn's extension): a run is one POST of the task's event to
the function's URL, and the answer is the task's result. No user code runs on the platform.

The event is the one the Python runtime gets ({body, query, taskId, functionId}), as JSON. The
URL's shape was checked when the function was created; each run checks its host's addresses
again (taskfn.outbound: private, loopback and link-local ones only where the caller allows
them) and connects to the address it checked, with the URL's host for Host, SNI and the
certificate. The task's timeout is the whole exchange's. The answer is kept as it came: its
status, Content-Type and body (text when it is UTF-8, base64 otherwise), up to
Limits.max_result_bytes. A redirect is an answer like any other (never followed); any answer
but a 2xx fails the task, and stays its result. No answer is a 504 (the timeout) or a 502
(refused address, no connection, a malformed answer, a body too large), with the reason.

Like the rest of taskfn.runtime it reads no settings: the caller says what is allowed.
"""

from __future__ import annotations

import base64
import json
import threading
import time

from taskfn import outbound
from taskfn.runtime.python import CANCELLED_REASON, Execution, Limits, failure

LANG = "http"  # FunctionRecord.lang and TaskRecord.lang of an HTTP function
USER_AGENT = "taskfn-http-function"
DEFAULT_CONTENT_TYPE = "application/octet-stream"  # what an answer without one is taken for
_MAX_HEADER_CHARS = 1024
_NO_LIMITS = Limits()  # frozen, so one shared default is safe


def run_http(
    url: str,
    event: dict,
    *,
    limits: Limits = _NO_LIMITS,
    allow_private: bool = False,
    resolver: outbound.Resolver | None = None,
    cancel: threading.Event | None = None,
) -> Execution:
    """POST `event` to `url` and keep the answer; never raises for anything the URL's server
    does. Setting `cancel` ends the exchange at once (Runtime.Cancelled). Raises ValueError
    only if the event itself is not JSON serializable (a caller bug)."""
    try:
        payload = json.dumps(event).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"event is not JSON serializable: {error}") from error
    started = time.monotonic()
    timeout_s = float(limits.timeout_s)
    try:
        address = outbound.check_url(url, allow_private=allow_private,
                                     resolver=resolver or outbound.resolve)
    except outbound.RefusedURL as error:
        reason = f"the function's URL is refused: {error}"
        return failure(502, "HTTPFunction.Refused", reason, reason=reason, started=started)
    try:
        response = outbound.post(
            url, payload, address=address,
            deadline_s=timeout_s - (time.monotonic() - started),  # resolving took some
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
            max_body_bytes=int(limits.max_result_bytes), cancel=cancel)
    except OSError as error:
        if cancel is not None and cancel.is_set():
            return failure(500, "Runtime.Cancelled", CANCELLED_REASON, reason=CANCELLED_REASON,
                           started=started)
        if isinstance(error, TimeoutError):
            reason = f"timed out after {timeout_s:g} s"
            return failure(504, "TimeoutError", reason, reason=reason, timed_out=True,
                           started=started)
        reason = f"no answer from the function's URL: {_one_line(error)}"
        return failure(502, "HTTPFunction.ConnectionError", reason, reason=reason,
                       started=started)
    return _kept(response, limits, started)


def _kept(response: outbound.Response, limits: Limits, started: float) -> Execution:
    """The answer as the task's result, or a 502 when it cannot be one."""
    if response.oversized:
        reason = f"the function's URL answered more than {limits.max_result_bytes} bytes"
        return failure(502, "HTTPFunction.ResultTooLarge", reason, reason=reason,
                       started=started)
    status = response.status
    if not 200 <= status <= 599:
        reason = f"the function's URL answered status {status}, which is no final answer"
        return failure(502, "HTTPFunction.InvalidAnswer", reason, reason=reason,
                       started=started)
    content_type = _clean(response.header("Content-Type")) or DEFAULT_CONTENT_TYPE
    try:
        body, is_base64 = response.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(response.body).decode("ascii"), True
    succeeded = 200 <= status < 300
    return Execution(
        succeeded=succeeded,
        timed_out=False,
        status_code=status,
        headers={"Content-Type": content_type},
        body=body,
        is_base64=is_base64,
        failure_reason="" if succeeded else f"the function's URL answered {status}",
        duration_ms=(time.monotonic() - started) * 1000.0,
    )


def _clean(value: str | None) -> str:
    """A header value fit to be replayed: printable ASCII, bounded; else nothing."""
    if not value or len(value) > _MAX_HEADER_CHARS:
        return ""
    return value if value.isascii() and value.isprintable() else ""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:500]
