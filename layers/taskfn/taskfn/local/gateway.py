"""A local API Gateway HTTP API: the template's routes, its Lambda authorizer, payload 2.0.

Handlers get the same event AWS would send them and their answers are turned into HTTP the
way API Gateway does it, so a handler never needs to know it runs locally.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from taskfn.local import profiling
from taskfn.local.invoke import Invoker
from taskfn.local.provision import ACCOUNT_ID, REGION
from taskfn.local.template import AuthorizerSpec, HttpRoute, Template

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
# After refusing a body it did not read: how much of it, and how long, is read and dropped.
DRAIN_MAX_BYTES, DRAIN_S = 1024 * 1024, 2.0
DEFAULT_ROUTE = "$default"
TEXT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
    "application/graphql",
    "application/x-yaml",
    "application/yaml",
)


# --- routing ----------------------------------------------------------------------------

LITERAL, VARIABLE, GREEDY = 0, 1, 2


def _segments(path: str) -> list[str]:
    return path.split("/")[1:] if path.startswith("/") else path.split("/")


def _kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return VARIABLE
    return LITERAL


def _match_path(route_path: str, raw_path: str) -> dict[str, str] | None:
    """Path parameters if the route's path matches, else None."""
    pattern, actual = _segments(route_path), _segments(raw_path)
    params: dict[str, str] = {}
    for index, segment in enumerate(pattern):
        kind = _kind(segment)
        if kind == GREEDY:
            rest = actual[index:]
            if not rest or not "/".join(rest):
                return None
            params[segment[1:-2]] = unquote("/".join(rest))
            return params
        if index >= len(actual):
            return None
        if kind == VARIABLE:
            if not actual[index]:
                return None
            params[segment[1:-1]] = unquote(actual[index])
        elif unquote(actual[index]) != segment:
            return None
    return params if len(actual) == len(pattern) else None


def _precedence(route: HttpRoute) -> tuple:
    """Literal segments beat {var}, {var} beats {proxy+}; a named method beats ANY."""
    return (tuple(_kind(segment) for segment in _segments(route.path)), route.method == "ANY")


class Router:
    """Chooses the route API Gateway would choose for a request."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        self.default = next((route for route in routes if route.path == DEFAULT_ROUTE), None)
        self.routes = sorted(
            (route for route in routes if route.path != DEFAULT_ROUTE), key=_precedence
        )

    def match(self, method: str, raw_path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        """The best route and its path parameters, or None (404)."""
        method = method.upper()
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            params = _match_path(route.path, raw_path)
            if params is not None:
                return route, params
        return (self.default, {}) if self.default else None


def route_key(route: HttpRoute) -> str:
    """``"GET /v1/task/{id}"``, or ``"$default"``."""
    return DEFAULT_ROUTE if route.path == DEFAULT_ROUTE else f"{route.method} {route.path}"


# --- events -----------------------------------------------------------------------------


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text (else base64)."""
    if not content_type:
        return False
    media = content_type.split(";")[0].strip().lower()
    return (
        media.startswith("text/")
        or media in TEXT_TYPES
        or media.endswith("+json")
        or media.endswith("+xml")
    )


def _request_id() -> str:
    return base64.b64encode(os.urandom(11)).decode()


@dataclass
class Request:
    """One HTTP request as the gateway received it."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str


def _event_common(request: Request, request_id: str, api_id: str) -> dict[str, Any]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    domain = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "stageVariables": None,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    return event


def build_event(
    request: Request,
    route: HttpRoute,
    path_parameters: dict[str, str],
    *,
    request_id: str,
    api_id: str = "local",
    authorizer_context: dict | None = None,
    authorized: bool = False,
) -> dict[str, Any]:
    """The API Gateway HTTP API payload-format-2.0 event of a route."""
    event = _event_common(request, request_id, api_id)
    key = route_key(route)
    event["routeKey"] = key
    event["requestContext"]["routeKey"] = key
    if path_parameters:
        event["pathParameters"] = path_parameters
    if authorized:
        event["requestContext"]["authorizer"] = {"lambda": authorizer_context}
    if request.body:
        if is_text(event["headers"].get("content-type")):
            try:
                event["body"] = request.body.decode("utf-8")
                event["isBase64Encoded"] = False
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def build_authorizer_event(
    request: Request,
    route: HttpRoute,
    path_parameters: dict[str, str],
    identity: list[str],
    *,
    request_id: str,
    api_id: str = "local",
) -> dict[str, Any]:
    """The REQUEST authorizer event (payload 2.0) for a route."""
    event = _event_common(request, request_id, api_id)
    key = route_key(route)
    event.update(
        type="REQUEST",
        routeArn=(
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/$default/"
            f"{request.method}{request.raw_path}"
        ),
        identitySource=identity,
        routeKey=key,
    )
    event["requestContext"]["routeKey"] = key
    if path_parameters:
        event["pathParameters"] = path_parameters
    return event


# --- responses --------------------------------------------------------------------------


@dataclass
class Response:
    """What goes back over HTTP."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def message(status: int, text: str) -> Response:
    """API Gateway's own error answers: ``{"message": "..."}``."""
    body = json.dumps({"message": text}, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json")], body)


def to_response(result: Any) -> Response:
    """Turn a handler's answer into HTTP as API Gateway does for payload format 2.0."""
    if not (isinstance(result, dict) and "statusCode" in result):
        body = json.dumps(result).encode()
        return Response(200, [("Content-Type", "application/json")], body)
    status = int(result["statusCode"])
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(value)) for value in values)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise TypeError(f"the response body must be a string, not {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(body)
    else:
        payload = body.encode("utf-8")
    return Response(status, headers, payload)


# --- the gateway ------------------------------------------------------------------------


class _BadRequest(Exception):
    """A request whose body framing cannot be read."""


def _chunk_size(line: bytes) -> int:
    """A chunk's size line: hexadecimal digits (extensions after ';' ignored), else
    _BadRequest (int() would take "-1", and then a read to the end of the stream)."""
    digits = line.split(b";")[0].strip()
    if not digits or len(digits) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
        raise _BadRequest("malformed chunk size")
    return int(digits, 16)


class _Unauthorized(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class _Server(ThreadingHTTPServer):
    """A thread per connection, and a listen backlog for bursts of clients (the standard
    library's 5 resets connections under a few dozen concurrent ones)."""

    daemon_threads = True
    request_queue_size = 1024


class Gateway:
    """The HTTP server: route, authorize (with a cache), invoke, answer."""

    def __init__(
        self,
        template: Template,
        invoker: Invoker,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        api_id: str = "local",
        access_log: bool = True,
    ) -> None:
        self.template = template
        self.invoker = invoker
        self.router = Router(template.routes)
        self.api_id = api_id
        self.access_log = access_log
        self._cache: dict[tuple, tuple[float, bool, Any]] = {}
        self._cache_lock = threading.Lock()
        self._server = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="taskfn-gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    # -- request handling ----------------------------------------------------------------

    def handle(self, request: Request, request_id: str) -> Response:
        """Answer one request; never raises."""
        try:
            matched = self.router.match(request.method, request.raw_path)
            if matched is None:
                return message(404, "Not Found")
            route, params = matched
            context, authorized = None, False
            if route.authorizer is not None:
                context = self._authorize(route, params, request, request_id)
                authorized = True
            event = build_event(
                request,
                route,
                params,
                request_id=request_id,
                api_id=self.api_id,
                authorizer_context=context,
                authorized=authorized,
            )
            return to_response(self.invoker.invoke(route.function_id, event))
        except _Unauthorized as refusal:
            return refusal.response
        except Exception:
            sys.stderr.write(f"taskfn local: {request.method} {request.raw_path} failed\n")
            traceback.print_exc(file=sys.stderr)
            return message(500, "Internal Server Error")

    def _authorize(
        self, route: HttpRoute, params: dict[str, str], request: Request, request_id: str
    ) -> Any:
        """The authorizer's context for an allowed request; raises _Unauthorized otherwise."""
        spec = self.template.authorizers.get(route.authorizer or "")
        if spec is None:
            raise ValueError(f"authorizer {route.authorizer!r} is not in the template")
        headers = {}
        for name, value in request.headers:
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        identity = [headers.get(name.lower(), "") for name in spec.identity_headers]
        if not all(identity):
            raise _Unauthorized(message(401, "Unauthorized"))
        key = (spec.name, tuple(identity))
        allowed, context = self._cached(spec, key)
        if allowed is None:
            event = build_authorizer_event(
                request, route, params, identity, request_id=request_id, api_id=self.api_id
            )
            allowed, context = _authorizer_answer(
                spec, self.invoker.invoke(spec.function_id, event)
            )
            if spec.reauthorize_every > 0:
                with self._cache_lock:
                    expires = time.monotonic() + spec.reauthorize_every
                    self._cache[key] = (expires, allowed, context)
        if not allowed:
            raise _Unauthorized(message(403, "Forbidden"))
        return context

    def _cached(self, spec: AuthorizerSpec, key: tuple) -> tuple[bool | None, Any]:
        if spec.reauthorize_every <= 0:
            return None, None
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._cache.pop(key, None)
                return None, None
            return entry[1], entry[2]


def _authorizer_answer(spec: AuthorizerSpec, answer: Any) -> tuple[bool, Any]:
    """(allowed, context) from a simple response or an IAM policy response."""
    if not isinstance(answer, dict):
        raise TypeError(f"authorizer {spec.name} answered {answer!r}")
    if spec.simple_responses and "isAuthorized" in answer:
        if not isinstance(answer["isAuthorized"], bool):
            raise TypeError(f"authorizer {spec.name}: isAuthorized must be a boolean")
        return answer["isAuthorized"], answer.get("context")
    statements = (answer.get("policyDocument") or {}).get("Statement")
    if statements is None:
        raise TypeError(f"authorizer {spec.name} answered neither isAuthorized nor a policy")
    if isinstance(statements, dict):
        statements = [statements]
    effects = {str(statement.get("Effect", "")).lower() for statement in statements}
    return ("allow" in effects and "deny" not in effects), answer.get("context")


def _make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "taskfn-local"

        def _serve(self) -> None:
            if not profiling.ON:
                self._serve_one()
                return
            profiling.enter("gateway")
            try:
                self._serve_one()
            finally:
                profiling.leave()

        def _serve_one(self) -> None:
            started = time.monotonic()
            request_id = _request_id()
            try:
                body = self._read_body()
            except _BadRequest:
                self.close_connection = True
                self._send(message(400, "Bad Request"), request_id)
                self._drain()
                return
            if body is None:
                response = message(413, "Request Entity Too Large")
                self.close_connection = True
            else:
                split = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    raw_path=split.path or "/",
                    raw_query=split.query,
                    headers=self._headers_with_forwarding(),
                    body=body,
                    source_ip=self.client_address[0],
                    protocol=self.request_version,
                )
                response = gateway.handle(request, request_id)
            self._send(response, request_id)
            if gateway.access_log:
                elapsed = (time.monotonic() - started) * 1000
                sys.stderr.write(f"{self.command} {self.path} {response.status} {elapsed:.0f}ms\n")

        def _headers_with_forwarding(self) -> list[tuple[str, str]]:
            headers = list(self.headers.items())
            names = {name.lower() for name, _ in headers}
            extra = {
                "x-forwarded-for": self.client_address[0],
                "x-forwarded-port": str(gateway.port),
                "x-forwarded-proto": "http",
                "x-amzn-trace-id": f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}",
            }
            headers.extend((name, value) for name, value in extra.items() if name not in names)
            # As API Gateway does, a client's own X-Forwarded-For gets the peer appended: the
            # last entry is the only one the gateway vouches for (sourceIp is that one too).
            return [(name, f"{value}, {self.client_address[0]}")
                    if name.lower() == "x-forwarded-for" and "x-forwarded-for" in names
                    else (name, value) for name, value in headers]

        def _read_body(self) -> bytes | None:
            """The request body, or None when it is over the limit; _BadRequest when its
            framing is malformed (a length that is not a number, a negative chunk size)."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks, size = [], 0
                while True:
                    line = self.rfile.readline(65537)
                    length = _chunk_size(line)
                    if length == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    size += length
                    if size > MAX_BODY:
                        return None
                    chunks.append(self.rfile.read(length))
                    self.rfile.readline(65537)
            declared = (self.headers.get("Content-Length") or "0").strip()
            if not declared.isdigit() or not declared.isascii():
                raise _BadRequest("Content-Length is not a number")
            length = int(declared)
            if length > MAX_BODY:
                return None
            return self.rfile.read(length) if length > 0 else b""

        def _send(self, response: Response, request_id: str) -> None:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() in ("content-length", "transfer-encoding", "connection"):
                    continue
                if not _HEADER_NAME.fullmatch(name) or any(c in value for c in "\r\n\0"):
                    continue  # never split a response, whatever a handler answered
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("apigw-requestid", request_id)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _drain(self) -> None:
            """A lingering close: read what the client still sends (up to 1 MiB, for 2 s)
            once the answer is out. Closing a socket with unread input makes the kernel reset
            the connection, which can destroy the answer before the client has read it."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(DRAIN_S)
                left = DRAIN_MAX_BYTES
                while left > 0 and (chunk := self.connection.recv(min(left, 65536))):
                    left -= len(chunk)
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: one access line per request is written by _serve."""

        def send_error(self, code: int, message_text: str | None = None,
                       explain: str | None = None) -> None:
            """The standard library's own refusals (a malformed request line, headers too
            long) in API Gateway's JSON, not an HTML page."""
            self.close_connection = True
            if self.request_version in ("", "HTTP/0.9"):  # else no status line at all
                self.request_version = "HTTP/1.0"
            text = {400: "Bad Request", 414: "Request-URI Too Long",
                    431: "Request Header Fields Too Large"}.get(code, message_text or "Error")
            self._send(message(code, text), _request_id())

        def __getattr__(self, name: str) -> Any:
            # Every method goes to the router, as API Gateway routes any method: one without
            # a route is its 404, never the standard library's 501 page.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

    return Handler
