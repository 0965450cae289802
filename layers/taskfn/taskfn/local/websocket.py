"""A local API Gateway WebSocket API: the template's WsApi routes ($connect, $disconnect,
$default) driven with the events API Gateway sends, and its @connections management API for
the log pump. Uses the `websockets` library (asyncio), in a thread of the local stack.

Clients connect at fastlane's own paths, /tasks/<t>/jobs/<j>[/executions/<e>]/ws[/], or in
the query form API Gateway takes (/<stage>?task=…&job=…[&execution=…][&ticket=…]). A $connect
answer that is not 2xx refuses the handshake with its status.

The management API is served on a port of its own, over plain HTTP, since the websockets
server reads GET requests without bodies only. Its callers must sign with SigV4 as a function
whose policy grants execute-api:ManageConnections (checked against the local identities):
user code runs on this machine and can reach 127.0.0.1, but holds no credentials. A DELETE
closes with the code and reason its X-Taskfn-Close header says (API Gateway ignores it and
closes with 1000), so local clients see fastlane's exact codes.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hmac
import json
import os
import re
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from taskfn.local.identities import Identities
from taskfn.local.invoke import Invoker
from taskfn.local.template import Template

ROUTE_TYPE = "AWS::ApiGatewayV2::Route"
INTEGRATION_TYPE = "AWS::ApiGatewayV2::Integration"
MANAGE = "execute-api:ManageConnections"
CLOSE_HEADER = "x-taskfn-close"
STAGE = "live"
FASTLANE_PATH = re.compile(r"/tasks/([^/]+)/jobs/([^/]+)(?:/executions/([^/]+))?/ws/?")
_SIGNATURE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/execute-api/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})")
CLOCK_SKEW_S = 300
MAX_MESSAGE = 128 * 1024  # API Gateway's largest message


def websocket_routes(template: Template) -> dict[str, str]:
    """Route key ("$connect", …) → the function its integration invokes."""
    resources = template.resources
    routes: dict[str, str] = {}
    for resource in resources.values():
        if resource.get("Type") != ROUTE_TYPE:
            continue
        props = resource.get("Properties") or {}
        target = _sub_text(props.get("Target"))
        found = re.search(r"\$\{(\w+)\}", target)
        integration = resources.get(found.group(1)) if found else None
        if not integration or integration.get("Type") != INTEGRATION_TYPE:
            continue
        uri = _sub_text((integration.get("Properties") or {}).get("IntegrationUri"))
        function = re.search(r"\$\{(\w+)\.Arn\}", uri)
        if function and function.group(1) in template.functions:
            routes[str(props.get("RouteKey"))] = function.group(1)
    return routes


def _sub_text(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        value = value["Fn::Sub"]
        value = value[0] if isinstance(value, list) else value
    return value if isinstance(value, str) else ""


def managing_functions(template: Template) -> frozenset[str]:
    """The functions whose policies grant execute-api:ManageConnections."""
    found = set()
    for function_id in template.functions:
        policies = (template.resources[function_id].get("Properties") or {}).get(
            "Policies") or []
        for policy in policies if isinstance(policies, list) else []:
            statements = policy.get("Statement", []) if isinstance(policy, dict) else []
            for statement in statements if isinstance(statements, list) else [statements]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                if statement.get("Effect") == "Allow" and MANAGE in actions:
                    found.add(function_id)
    return frozenset(found)


def new_connection_id() -> str:
    """An id shaped as API Gateway's (12 base64 characters, "=" included)."""
    return base64.b64encode(os.urandom(8)).decode()[:11] + "="


class _Open:
    def __init__(self, connection: ServerConnection, source_ip: str, user_agent: str):
        self.connection = connection
        self.source_ip = source_ip
        self.user_agent = user_agent
        self.connected_at = time.time()
        self.last_active_at = self.connected_at


class LocalWebSocketApi:
    """The WebSocket API and its management API; start() serves both in threads."""

    def __init__(self, template: Template, invoker: Invoker, identities: Identities | None,
                 *, host: str = "127.0.0.1", port: int = 3001, management_port: int = 0,
                 api_id: str = "local") -> None:
        self.template = template
        self.invoker = invoker
        self.host = host
        self.api_id = api_id
        self.routes = websocket_routes(template)
        self.identities = identities
        allowed = managing_functions(template)
        self._signers = {credentials.access_key: (function_id, credentials)
                         for function_id, credentials in
                         (identities.functions.items() if identities else ())
                         if function_id in allowed}
        self._open: dict[str, _Open] = {}
        self._pending: dict[ServerConnection, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(32, "taskfn-ws")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._wanted_port = port
        self._port = 0
        self._thread: threading.Thread | None = None
        self._management = ThreadingHTTPServer((host, management_port), _management_handler(self))
        self._management.daemon_threads = True
        self._management_thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """What clients connect to (the query form's base; the stage as its path)."""
        return f"ws://{self.host}:{self.port}/{STAGE}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self._management.server_address[1]}/{STAGE}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="taskfn-websocket",
                                        daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            raise RuntimeError(f"the local WebSocket API did not start: {self._failure}")
        self._management_thread = threading.Thread(
            target=self._management.serve_forever, name="taskfn-ws-management", daemon=True)
        self._management_thread.start()

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            try:
                self._server = await serve(
                    self._connection, self.host, self._wanted_port,
                    process_request=self._handshake, select_subprotocol=self._subprotocol,
                    max_size=MAX_MESSAGE, compression=None)
            except BaseException as error:
                self._failure = error
                self._started.set()
                return
            self._port = int(self._server.sockets[0].getsockname()[1])
            self._started.set()
            await self._server.wait_closed()

        asyncio.run(main())

    def stop(self) -> None:
        """Clients first (closed 1001; each gets its $disconnect), then the management API,
        which a pump may use until its connections are gone."""
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        if self._management_thread is not None:
            self._management.shutdown()
            self._management_thread.join()
            self._management_thread = None
        self._management.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the WebSocket side ----------------------------------------------------------------

    def _event(self, route_key: str, connection_id: str, *, headers: dict[str, str] | None = None,
               query: dict[str, str] | None = None, source_ip: str = "",
               body: str | None = None) -> dict[str, Any]:
        event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key,
                                                                                "MESSAGE")
        now = time.time()
        context: dict[str, Any] = {
            "routeKey": route_key, "eventType": event_type, "connectionId": connection_id,
            "domainName": f"{self.host}:{self.port}", "stage": STAGE, "apiId": self.api_id,
            "requestId": base64.b64encode(os.urandom(9)).decode(), "extendedRequestId": "",
            "requestTimeEpoch": int(now * 1000), "connectedAt": int(now * 1000),
            "identity": {"sourceIp": source_ip}, "messageDirection": "IN",
        }
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if headers is not None:
            event["headers"] = headers
            event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
        if query:
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        if body is not None:
            event["body"] = body
        return event

    async def _invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        function_id = self.routes.get(route_key)
        if function_id is None:
            return {"statusCode": 200}
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.invoker.invoke, function_id, event)

    async def _handshake(self, connection: ServerConnection, request: Request) -> Any:
        split = urlsplit(request.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        matched = FASTLANE_PATH.fullmatch(split.path)
        if matched:
            task_id, job_id, execution_id = (unquote(part or "") for part in matched.groups())
            query |= {"task": task_id, "job": job_id}
            if execution_id:
                query["execution"] = execution_id
        elif split.path.rstrip("/") not in ("", f"/{STAGE}"):
            return connection.respond(404, "Not Found\n")
        if not _is_upgrade(request):
            # refused before $connect: a handshake websockets would refuse after it leaves a
            # recorded connection (and a pump message) nobody ever disconnects
            return connection.respond(400, "Not a WebSocket handshake\n")
        connection_id = new_connection_id()
        headers = {name: value for name, value in request.headers.raw_items()}
        source_ip = str((connection.remote_address or ("",))[0])
        try:
            answer = await self._invoke("$connect", self._event(
                "$connect", connection_id, headers=headers, query=query, source_ip=source_ip))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return connection.respond(500, "Internal Server Error\n")
        status = int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200
        if not 200 <= status < 300:
            body = answer.get("body") if isinstance(answer, dict) else None
            return connection.respond(status, f"{body or ''}\n")
        protocol = str(((answer or {}).get("headers") or {}).get("Sec-WebSocket-Protocol", ""))
        with self._lock:
            self._pending[connection] = (connection_id, protocol)
        return None

    def _subprotocol(self, connection: ServerConnection, offered: Any) -> Any:
        with self._lock:
            _, protocol = self._pending.get(connection, ("", ""))
        return protocol if protocol and protocol in offered else None

    async def _connection(self, connection: ServerConnection) -> None:
        with self._lock:
            connection_id, _ = self._pending.pop(connection)
        headers = connection.request.headers if connection.request else {}
        opened = _Open(connection, str((connection.remote_address or ("",))[0]),
                       str(headers.get("User-Agent", "")))
        with self._lock:
            self._open[connection_id] = opened
        try:
            async for message in connection:
                opened.last_active_at = time.time()
                text = message if isinstance(message, str) else message.decode(errors="replace")
                try:
                    await self._invoke("$default", self._event(
                        "$default", connection_id, source_ip=opened.source_ip, body=text))
                except Exception:
                    traceback.print_exc(file=sys.stderr)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._open.pop(connection_id, None)
            try:
                await self._invoke("$disconnect", self._event(
                    "$disconnect", connection_id, headers={}, source_ip=opened.source_ip))
            except Exception:
                traceback.print_exc(file=sys.stderr)

    # --- the management API ---------------------------------------------------------------

    def opened(self, connection_id: str) -> _Open | None:
        with self._lock:
            return self._open.get(connection_id)

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        """A coroutine run on the server's loop, from a management thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def signer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """The function that signed this request, if its signature is good, recent, and
        its role may manage connections; None otherwise."""
        found = _SIGNATURE.fullmatch(headers.get("authorization", ""))
        if not found:
            return None
        access_key, day, region, signed, signature = found.groups()
        known = self._signers.get(access_key)
        amz_date = headers.get("x-amz-date", "")
        if known is None or not amz_date.startswith(day):
            return None
        function_id, credentials = known
        if credentials.token and headers.get("x-amz-security-token") != credentials.token:
            return None
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        if abs(time.time() - when.timestamp()) > CLOCK_SKEW_S:
            return None
        names = signed.split(";")
        if "host" not in names or any(name not in headers for name in names):
            return None
        request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                             headers={name: headers[name] for name in names})
        request.context["timestamp"] = amz_date
        auth = SigV4Auth(Credentials(credentials.access_key, credentials.secret_key,
                                     credentials.token), "execute-api", region)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                                  request)
        return function_id if hmac.compare_digest(expected, signature) else None


def _management_handler(api: LocalWebSocketApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _answer(self, status: int, body: dict | None = None, error: str = "") -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_MESSAGE:
                self.close_connection = True
                self._answer(413, {"message": "Request too large"}, "PayloadTooLargeException")
                return
            body = self.rfile.read(int(length)) if int(length) else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            split = urlsplit(self.path)
            if api.signer(self.command, self.path, headers, body) is None:
                self._answer(403, {"message": "Forbidden"}, "ForbiddenException")
                return
            found = re.fullmatch(r"(?:/[^/]+)?/@connections/([^/]+)", split.path)
            if found is None:
                self._answer(404, {"message": "Not Found"}, "NotFoundException")
                return
            connection_id = unquote(found.group(1))
            opened = api.opened(connection_id)
            if opened is None:
                self._answer(410, {"message": "Gone"}, "GoneException")
                return
            try:
                if self.command == "POST":
                    text = body.decode("utf-8", errors="strict")
                    api.run(opened.connection.send(text))
                    self._answer(200)
                elif self.command == "DELETE":
                    code, _, reason = (headers.get(CLOSE_HEADER) or "1000").partition(" ")
                    api.run(opened.connection.close(int(code) if code.isdigit() else 1000,
                                                    reason[:120]))
                    self._answer(204)
                elif self.command == "GET":
                    def iso(moment: float) -> str:
                        return datetime.fromtimestamp(moment, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%S.%fZ")
                    self._answer(200, {"connectedAt": iso(opened.connected_at),
                                       "lastActiveAt": iso(opened.last_active_at),
                                       "identity": {"sourceIp": opened.source_ip,
                                                    "userAgent": opened.user_agent}})
                else:
                    self._answer(405, {"message": "Method Not Allowed"})
            except UnicodeDecodeError:
                self._answer(400, {"message": "Data must be UTF-8 text"}, "BadRequestException")
            except (ConnectionClosed, concurrent.futures.TimeoutError):
                self._answer(410, {"message": "Gone"}, "GoneException")

        do_POST = do_GET = do_DELETE = _serve

    return Handler


def _is_upgrade(request: Request) -> bool:
    """Whether the request is a WebSocket handshake websockets will accept (RFC 6455 §4.2.1:
    the upgrade, a 16-byte key, version 13)."""
    import base64
    import binascii

    headers = request.headers
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        key_ok = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        key_ok = False
    return key_ok and headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in {
        part.strip().lower() for part in headers.get("Connection", "").split(",")} and \
        headers.get("Sec-WebSocket-Version", "") == "13"
