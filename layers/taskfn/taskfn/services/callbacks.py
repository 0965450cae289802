"""Completion callbacks (reference/bbs.md), delivered by the callback Lambda from its queue,
never inside an API request.

What queues a callback is the table's stream: a task entering Completed with a callback URL
(completed, failed, cancelled, expired, or demoted back from Resolving), whoever wrote it. No
writer sends anything beside its write, and the stream does not lose a change, so a callback
is queued even when the writer dies right after its write.

Per task guid: Completed → Resolving (conditional, so two deliveries of one message cannot
both post), POST the BBS payload, then delete the task on any answer but a timeout, a
connection error or 503/504, which are retried up to three attempts. A delivery that gives up
leaves the task Resolving; convergence demotes it and sends the callback again.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidStateTransition, NotFound
from taskfn.lifecycle import State
from taskfn.models import TaskRecord, now_ns
from taskfn.settings import Settings, get_settings
from taskfn.stores.queue import TaskQueue
from taskfn.stores.table import from_item
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

ATTEMPTS = 3  # BBS's callback attempts
RETRY_STATUSES = frozenset({503, 504})
PAYLOAD_FIELDS = ("task_guid", "failed", "failure_reason", "result", "annotation", "created_at")

# (url, JSON body, the whole POST's time in seconds, the address to connect to) → HTTP
# status; raises OSError (timeouts, refused connections, TLS failures) when no answer came.
Poster = Callable[[str, bytes, float, str], int]
Resolver = Callable[[str], list[str]]


def newly_completed(records: list[Mapping[str, Any]]) -> list[str]:
    """Guids of tasks that a stream batch shows entering Completed with a callback URL, in
    order, each once."""
    guids: list[str] = []
    for record in records:
        change = record.get("dynamodb") or {}
        new = from_item(change.get("NewImage") or {})
        old = from_item(change.get("OldImage") or {})
        entered = new.get("state") == State.COMPLETED and old.get("state") != State.COMPLETED
        is_task = new.get("SK") == "TASK"
        if entered and is_task and new.get("completion_callback_url"):
            guid = str(new.get("task_guid", ""))
            if guid and guid not in guids:
                guids.append(guid)
    return guids


def queue_callbacks(records: list[Mapping[str, Any]], queue: TaskQueue) -> list[str]:
    """Queue the callbacks a stream batch calls for; raises when SQS refuses some, so the
    batch comes again (a duplicate message is dropped by the Resolving write)."""
    guids = newly_completed(records)
    refused = queue.send_many(guids) if guids else []
    if refused:
        raise RuntimeError(f"could not queue {len(refused)} callbacks, e.g. {refused[0]}")
    return guids


class RefusedURL(ValueError):
    """A callback URL the platform will not call (bad scheme, or a private address)."""


def _time_left(deadline: float) -> float:
    """Seconds until `deadline` (time.monotonic()); TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the callback's time is up")
    return left


class _Deadlined:
    """A socket whose every send and receive may wait only for what is left until its
    deadline. A socket's own timeout applies to each call anew, so a server answering a byte
    at a time would hold the POST (and the callback Lambda) for as long as it likes."""

    deadline = 0.0

    def keep_to_deadline(self) -> None:
        self.settimeout(_time_left(self.deadline))

    def recv(self, *args: Any) -> Any:
        self.keep_to_deadline()
        return super().recv(*args)

    def recv_into(self, *args: Any) -> Any:
        self.keep_to_deadline()
        return super().recv_into(*args)

    def send(self, *args: Any) -> Any:
        self.keep_to_deadline()
        return super().send(*args)

    def sendall(self, *args: Any) -> Any:
        self.keep_to_deadline()
        return super().sendall(*args)


class _DeadlinedSocket(_Deadlined, socket.socket):
    pass


class _DeadlinedSSLSocket(_Deadlined, ssl.SSLSocket):
    pass


def _connect(address: str, port: int, deadline: float) -> _DeadlinedSocket:
    raw = socket.create_connection((address, port), _time_left(deadline))
    sock = _DeadlinedSocket(fileno=raw.detach())
    sock.deadline = deadline
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a given address, every step of it done by `deadline`."""

    def __init__(self, host: str, port: int, *, address: str, deadline: float):
        super().__init__(host, port)
        self.address = address
        self.deadline = deadline

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.deadline)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address, with the URL's host name for SNI and certificate checks,
    every step of it (the TLS handshake too) done by `deadline`."""

    def __init__(self, host: str, port: int, *, address: str, deadline: float):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlinedSSLSocket
        super().__init__(host, port, context=context)
        self.address = address
        self.deadline = deadline

    def connect(self) -> None:
        raw = _connect(self.address, self.port, self.deadline)
        tls = self._context.wrap_socket(raw, server_hostname=self.host,
                                        do_handshake_on_connect=False)
        tls.deadline = self.deadline
        tls.keep_to_deadline()  # the handshake as a whole waits at most this
        tls.do_handshake()
        self.sock = tls


def post_json(url: str, body: bytes, timeout: float, address: str) -> int:
    """POST to `address`, the one the SSRF check approved, never to a fresh resolution of the
    host (which DNS could point elsewhere in between). Any HTTP status is an answer; a
    redirect is not followed (it could lead to an address nobody checked). `timeout` is the
    whole POST's: connecting, sending, the status line, headers and the (bounded) body read;
    past it the POST raises TimeoutError, however the server paces its bytes."""
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    pinned = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = pinned(host, port, address=address, deadline=deadline)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    try:
        connection.request("POST", target, body=body, headers={
            "Host": netloc, "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    except http.client.HTTPException as error:  # a malformed answer: no answer
        raise OSError(f"bad HTTP answer: {error!r}") from error
    finally:
        connection.close()


def resolve(host: str) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> str:
    """The address to POST `url` to, or RefusedURL unless it is http(s) to public addresses
    only (SSRF guard; the local stack and tests allow private ones for their 127.0.0.1
    servers). The caller connects to that address: resolving again could give another."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL(f"not an http(s) URL: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
        addresses = resolver(parts.hostname)
    except (OSError, ValueError) as error:
        raise RefusedURL(f"cannot resolve {parts.hostname}: {error}") from error
    if not addresses:
        raise RefusedURL(f"{parts.hostname} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and (not ip.is_global or ip.is_multicast):
            raise RefusedURL(f"{parts.hostname} resolves to non-public address {ip}")
    return addresses[0]


def payload(task: TaskRecord) -> bytes:
    """BBS's callback body."""
    body = {name: getattr(task, name) for name in PAYLOAD_FIELDS}
    return json.dumps(body, separators=(",", ":")).encode()


class CallbackDelivery:
    def __init__(
        self,
        tasks: TaskStore,
        settings: Settings,
        *,
        post: Poster = post_json,
        resolver: Resolver = resolve,
        now: Callable[[], int] = now_ns,
    ):
        self.tasks = tasks
        self.settings = settings
        self.post = post
        self.resolver = resolver
        self.now = now

    @classmethod
    def from_env(cls) -> CallbackDelivery:
        return cls(wiring.tasks(), get_settings())

    def deliver(self, task_guid: str) -> str:
        """One message: "dropped" (not a Completed task with a callback any more),
        "delivered" / "refused" (task deleted) or "gave_up" (left Resolving)."""
        task = self.tasks.get(task_guid)
        url = task.completion_callback_url if task else ""
        if task is None or task.state != State.COMPLETED or not url:
            logger.info("callback of task %s dropped: not a Completed task with one", task_guid)
            return "dropped"
        try:
            self.tasks.apply(task_guid, lifecycle.resolving(self.now()))
        except (InvalidStateTransition, NotFound) as error:
            logger.info("callback of task %s dropped: %s", task_guid, error.message)
            return "dropped"
        try:
            address = check_url(url, allow_private=self.settings.allow_private_callbacks,
                                resolver=self.resolver)
        except RefusedURL as error:
            logger.warning("callback of task %s refused: %s", task_guid, error)
            self._delete(task_guid)
            return "refused"
        body = payload(task)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                status = self.post(url, body, self.settings.callback_timeout_s, address)
            except OSError as error:  # timeouts and connection errors (URLError is one)
                logger.info("callback of task %s attempt %d: %s", task_guid, attempt, error)
                continue
            if status in RETRY_STATUSES:
                logger.info("callback of task %s attempt %d: %d", task_guid, attempt, status)
                continue
            logger.info("callback of task %s answered %d", task_guid, status)
            self._delete(task_guid)
            return "delivered"
        logger.warning("callback of task %s gave up after %d attempts", task_guid, ATTEMPTS)
        return "gave_up"

    def _delete(self, task_guid: str) -> None:
        """Resolving → removed; a task demoted meanwhile is left to convergence."""
        try:
            self.tasks.remove(task_guid, lifecycle.delete())
        except (InvalidStateTransition, NotFound) as error:
            logger.info("task %s not deleted after its callback: %s", task_guid, error.message)
