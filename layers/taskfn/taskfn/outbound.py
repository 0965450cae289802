"""Outbound HTTP to URLs that users give (completion callbacks, HTTP functions): the SSRF guard
and one pinned POST with a deadline.

A URL is checked once per delivery: http(s) with a host, and, unless private addresses are
allowed (the local stack and tests, whose servers listen on 127.0.0.1), every address its host
resolves to public. The POST then connects to the address that was checked, never to a fresh
resolution of the host, which DNS could point elsewhere in between (rebinding); the URL's host
goes in the Host header, the SNI and the certificate check. A redirect is an answer like any
other, never followed: it could lead to an address nobody checked. The deadline is the whole
exchange's (connecting, TLS, sending, the status line, headers and the bounded body read), so a
server that paces its bytes cannot hold the caller past it.

Pure networking: no settings, no AWS; the callers say what is allowed.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from taskfn.errors import InvalidRequest

MAX_URL_CHARS = 2048
ERROR_CHARS = 200  # of what a server sent that an error repeats (a status line can be 64 KiB)
_CANCEL_POLL_S = 0.1

# host name → its addresses (socket.getaddrinfo's, as strings)
Resolver = Callable[[str], list[str]]


class RefusedURL(ValueError):
    """A URL the platform will not call (bad scheme, no host, or a private address)."""


@dataclass(frozen=True)
class Response:
    """An answer: status, headers as they came, and at most `max_body_bytes` of the body;
    `oversized` when the server had more to send than that."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    oversized: bool = False

    def header(self, name: str) -> str | None:
        """The last value of a header, whatever case its name came in."""
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


def _shape_problem(url: object) -> str | None:
    """Why `url` can never be posted to (whatever it resolves to), or None."""
    if not isinstance(url, str):
        return "the URL must be a string"
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F
                                for ch in url):
        return "the URL must be ASCII without spaces or control characters " \
               "(punycode for the host, percent-encoding for the rest)"
    try:  # an unclosed or bad IPv6 bracket raises here
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as error:
        return f"not a URL: {error}"
    if parts.scheme not in ("http", "https") or not hostname:
        return f"not an http(s) URL with a host: {url!r}"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        return f"bad port: {error}"
    return None


def check_url_shape(url: object) -> str:
    """The URL of a new HTTP function, as given; InvalidRequest unless it is an http(s) URL
    with a host, of at most MAX_URL_CHARS. Its addresses are checked at each run."""
    if isinstance(url, str) and len(url) > MAX_URL_CHARS:
        raise InvalidRequest("invalid url", f"at most {MAX_URL_CHARS} characters")
    problem = _shape_problem(url)
    if problem is not None:
        raise InvalidRequest("invalid url", problem)
    return str(url)


def resolve(host: str) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


# IPv6 forms that carry an IPv4 address (IPv4-compatible, IPv4-translated, NAT64), which
# Python calls global whatever the IPv4 address is: a NAT64 gateway would reach 10.0.0.1 for
# 64:ff9b::a00:1. None is a public destination of its own.
EMBEDDING_IPV4 = tuple(ipaddress.ip_network(n) for n in (
    "::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))


def _embeds_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.version == 6 and any(ip in network for network in EMBEDDING_IPV4)


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> str:
    """The address to POST `url` to, or RefusedURL unless it is http(s) to public addresses
    only (SSRF guard). The caller connects to that address: resolving again could give
    another."""
    problem = _shape_problem(url)
    if problem is not None:
        raise RefusedURL(problem)
    host = urlsplit(url).hostname or ""
    try:
        addresses = resolver(host)
    except (OSError, ValueError) as error:
        raise RefusedURL(f"cannot resolve {host}: {error}") from error
    if not addresses:
        raise RefusedURL(f"{host} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and (not ip.is_global or ip.is_multicast or _embeds_ipv4(ip)):
            raise RefusedURL(f"{host} resolves to non-public address {ip}")
    return addresses[0]


def post(url: str, body: bytes, *, address: str, deadline_s: float,
         headers: dict[str, str] | None = None, max_body_bytes: int = 64 * 1024,
         cancel: threading.Event | None = None) -> Response:
    """POST `body` to `address`, the one check_url approved, with the URL's host for Host,
    SNI and the certificate. Any HTTP status is an answer (a redirect is not followed). Past
    `deadline_s` seconds from now the POST raises TimeoutError, however the server paces its
    bytes; no answer (refused, reset, TLS failure, a malformed answer, `cancel` set) raises
    another OSError."""
    deadline = time.monotonic() + deadline_s
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    pinned = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = pinned(host, port, address=address, deadline=deadline, cancel=cancel)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    named = f"[{host}]" if ":" in host else host  # an IPv6 literal
    netloc = named if parts.port is None else f"{named}:{parts.port}"
    given = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    typed = any(k.lower() == "content-type" for k in given)
    sent = {**({} if typed else {"Content-Type": "application/json"}), **given, "Host": netloc}
    try:
        with _cancellable(connection, cancel):
            connection.request("POST", target, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read(max_body_bytes + 1)
            return Response(response.status, tuple(response.getheaders()),
                            data[:max_body_bytes], oversized=len(data) > max_body_bytes)
    except (http.client.HTTPException, UnicodeError) as error:  # a malformed answer: none
        raise OSError(f"bad HTTP answer: {type(error).__name__}: "
                      f"{str(error)[:ERROR_CHARS]!r}") from error
    finally:
        connection.close()


def _time_left(deadline: float) -> float:
    """Seconds until `deadline` (time.monotonic()); TimeoutError once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's time is up")
    return left


class _Deadlined:
    """A socket whose every send and receive may wait only for what is left until its
    deadline. A socket's own timeout applies to each call anew, so a server answering a byte
    at a time would hold the POST for as long as it likes."""

    deadline = 0.0
    cancel: threading.Event | None = None

    def keep_to_deadline(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ConnectionAbortedError("the request was cancelled")
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


def _connect(address: str, port: int, deadline: float,
             cancel: threading.Event | None) -> _DeadlinedSocket:
    raw = socket.create_connection((address, port), _time_left(deadline))
    sock = _DeadlinedSocket(fileno=raw.detach())
    sock.deadline = deadline
    sock.cancel = cancel
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a given address, every step of it done by `deadline`."""

    def __init__(self, host: str, port: int, *, address: str, deadline: float,
                 cancel: threading.Event | None = None):
        super().__init__(host, port)
        self.address = address
        self.deadline = deadline
        self.cancel = cancel

    def connect(self) -> None:
        self.sock = _connect(self.address, self.port, self.deadline, self.cancel)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address, with the URL's host name for SNI and certificate checks,
    every step of it (the TLS handshake too) done by `deadline`."""

    def __init__(self, host: str, port: int, *, address: str, deadline: float,
                 cancel: threading.Event | None = None):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlinedSSLSocket
        super().__init__(host, port, context=context)
        self.address = address
        self.deadline = deadline
        self.cancel = cancel

    def connect(self) -> None:
        raw = _connect(self.address, self.port, self.deadline, self.cancel)
        tls = self._context.wrap_socket(raw, server_hostname=self.host,
                                        do_handshake_on_connect=False)
        tls.deadline = self.deadline
        tls.cancel = self.cancel
        tls.keep_to_deadline()  # the handshake as a whole waits at most this
        tls.do_handshake()
        self.sock = tls


@contextlib.contextmanager
def _cancellable(connection: http.client.HTTPConnection,
                 cancel: threading.Event | None) -> Iterator[None]:
    """While the exchange runs, setting `cancel` shuts its socket: a read blocked on a slow
    server returns at once (and every later send or read refuses)."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:  # waits on `done`, so the exchange's end is never kept waiting
        while not done.wait(_CANCEL_POLL_S):
            if cancel.is_set():
                sock = connection.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # not TLS's own
                return

    watcher = threading.Thread(target=watch, daemon=True, name="taskfn-outbound-cancel")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
