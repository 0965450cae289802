"""HTTP functions (lang "http"): the executor POSTs the task's event to the function's URL and
keeps the answer. Real servers on 127.0.0.1 (and 127.0.0.2), run_http on its own and through
the executor against moto. The attacks (private addresses, DNS rebinding) are written as
such: a URL that must not be reached, and a count of what reached the server."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from taskfn import ids, outbound, wiring
from taskfn.errors import InvalidRequest
from taskfn.models import TaskRecord, now_ns
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.http_function import run_http
from taskfn.runtime.python import Limits
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

from .helpers import ALICE, TEMPLATE
from .test_callbacks import _serve, _stop, _Trickler

EVENT = {"body": {"name": "John Doe"}, "query": {"page": "2"}, "taskId": "t1",
         "functionId": "f1"}
BINARY = bytes(range(256)) * 4  # not UTF-8
LIMITS = Limits(timeout_s=10)


@dataclass
class Server:
    """A function's server: what it was asked, and how many connections reached it."""

    host: str
    port: int
    requests: list[dict] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"


def _handler(server: Server, other: dict) -> type[BaseHTTPRequestHandler]:
    class Function(BaseHTTPRequestHandler):
        def setup(self) -> None:
            with server.lock:
                server.connections += 1
            super().setup()

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            server.requests.append({"path": self.path, "host": self.headers["Host"],
                                    "type": self.headers["Content-Type"],
                                    "event": json.loads(data)})
            path = self.path.split("?")[0]
            if path == "/slow":
                time.sleep(3)
            headers, body = ANSWERS[path]
            status = {"/text": 201, "/teapot": 418, "/redirect": 302}.get(path, 200)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value.format(**other))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Function


ANSWERS: dict[str, tuple[dict[str, str], bytes]] = {
    "/json": ({"Content-Type": "application/json"}, b'{"answer": 42}'),
    "/text": ({"Content-Type": "text/plain; charset=utf-8"}, "héllo wörld".encode()),
    "/binary": ({"Content-Type": "image/png"}, BINARY),
    "/untyped": ({}, b"raw"),
    "/teapot": ({"Content-Type": "text/plain"}, b"short and stout"),
    "/redirect": ({"Location": "http://127.0.0.1:{target}/json",
                   "Content-Type": "text/html"}, b"moved"),
    "/big": ({"Content-Type": "text/plain"}, b"x" * 5000),
    "/slow": ({"Content-Type": "text/plain"}, b"late"),
}


def _start(host: str, port: int = 0, **other) -> Server:
    server = Server(host, 0)
    httpd = ThreadingHTTPServer((host, port), _handler(server, other))
    server.port, server.httpd = httpd.server_address[1], httpd
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def fn(servers) -> Server:
    """The function's server; its /redirect points at a second one, `fn.target`."""
    target = _start("127.0.0.1")
    server = _start("127.0.0.1", target=target.port)
    servers += [server, target]
    server.target = target
    return server


@pytest.fixture
def connects(monkeypatch) -> list[tuple]:
    """Every outbound connection attempt; none of them goes anywhere (refused)."""
    attempts: list[tuple] = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError("no network in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def error_of(result) -> dict:
    return json.loads(result.body)


# --- the answer kept --------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status", "content_type", "body", "is_base64"), [
    ("/json", 200, "application/json", '{"answer": 42}', False),
    ("/text", 201, "text/plain; charset=utf-8", "héllo wörld", False),
    ("/binary", 200, "image/png", base64.b64encode(BINARY).decode(), True),
    ("/untyped", 200, "application/octet-stream", "raw", False),
])
def test_the_answer_is_kept_as_it_came(fn, path, status, content_type, body, is_base64):
    result = run_http(fn.url(path), EVENT, limits=LIMITS, allow_private=True)
    assert result.succeeded and not result.timed_out
    assert (result.status_code, result.headers, result.body, result.is_base64) == (
        status, {"Content-Type": content_type}, body, is_base64)
    (request,) = fn.requests
    assert request["event"] == EVENT  # the Python runtime's event, as JSON
    assert request["type"] == "application/json"
    assert request["host"] == f"127.0.0.1:{fn.port}"


def test_a_non_2xx_answer_fails_the_run_and_stays_its_result(fn):
    result = run_http(fn.url("/teapot?x=1"), EVENT, limits=LIMITS, allow_private=True)
    assert not result.succeeded
    assert (result.status_code, result.content_type, result.body) == (
        418, "text/plain", "short and stout")
    assert result.failure_reason == "the function's URL answered 418"
    assert fn.requests[0]["path"] == "/teapot?x=1"


def test_a_redirect_is_the_answer_and_is_not_followed(fn):
    result = run_http(fn.url("/redirect"), EVENT, limits=LIMITS, allow_private=True)
    assert (result.status_code, result.body, result.succeeded) == (302, "moved", False)
    assert fn.target.connections == 0  # where it pointed was never asked


def test_a_url_slower_than_the_timeout_ends_504(fn):
    result = run_http(fn.url("/slow"), EVENT, limits=Limits(timeout_s=1), allow_private=True)
    assert (result.status_code, result.timed_out, result.succeeded) == (504, True, False)
    assert error_of(result) == {"errorType": "TimeoutError", "errorMessage": "timed out after 1 s"}
    assert result.failure_reason == "timed out after 1 s"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_trickles_its_answer_is_given_up_on_at_the_timeout(
        tmp_path, monkeypatch, scheme):
    _Trickler.sent = []
    server = _serve(_Trickler, scheme, tmp_path, monkeypatch)
    try:
        url = f"{scheme}://callbacks.test:{server.server_address[1]}/fn"
        result = run_http(url, EVENT, limits=Limits(timeout_s=1), allow_private=True,
                          resolver=lambda host: ["127.0.0.1"])
    finally:
        _stop(server)
    assert (result.status_code, result.timed_out) == (504, True)
    assert len(_Trickler.sent) == 1 and _Trickler.sent[0] < len(_Trickler.answer)


def test_an_answer_larger_than_the_result_limit_fails_with_the_reason(fn):
    result = run_http(fn.url("/big"), EVENT, limits=Limits(timeout_s=10, max_result_bytes=1000),
                      allow_private=True)
    assert (result.status_code, result.succeeded) == (502, False)
    assert error_of(result)["errorType"] == "HTTPFunction.ResultTooLarge"
    assert result.failure_reason == "the function's URL answered more than 1000 bytes"
    at_limit = run_http(fn.url("/big"), EVENT,
                        limits=Limits(timeout_s=10, max_result_bytes=5000), allow_private=True)
    assert at_limit.succeeded and at_limit.body == "x" * 5000


def test_no_server_at_the_url_is_a_502_with_the_reason():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_http(f"http://127.0.0.1:{port}/", EVENT, limits=LIMITS, allow_private=True)
    assert (result.status_code, result.succeeded) == (502, False)
    assert error_of(result)["errorType"] == "HTTPFunction.ConnectionError"
    assert result.failure_reason.startswith("no answer from the function's URL: ")


def test_an_https_url_is_posted_to_the_checked_address_with_its_host_name(
        tmp_path, monkeypatch):
    server = Server("127.0.0.1", 0)
    httpd = _serve(_handler(server, {}), "https", tmp_path, monkeypatch)
    try:
        port = httpd.server_address[1]
        result = run_http(f"https://callbacks.test:{port}/json", EVENT, limits=LIMITS,
                          allow_private=True, resolver=lambda host: ["127.0.0.1"])
    finally:
        _stop(httpd)
    assert (result.status_code, result.body) == (200, '{"answer": 42}')
    assert server.requests[0]["host"] == f"callbacks.test:{port}"


def test_a_cancelled_run_ends_its_request_at_once(fn):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = run_http(fn.url("/slow"), EVENT, limits=Limits(timeout_s=30), allow_private=True,
                      cancel=cancel)
    assert error_of(result)["errorType"] == "Runtime.Cancelled"  # not the late 200


# --- the attacks: private addresses, DNS rebinding ----------------------------------------


@pytest.mark.parametrize(("url", "resolves_to"), [
    ("http://127.0.0.1:{port}/json", None),
    ("http://localhost:{port}/json", None),
    ("http://[::1]:{port}/json", None),
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", None),
    ("http://db.internal.example/x", ["10.0.0.7"]),
    ("http://mixed.example/x", ["93.184.216.34", "192.168.1.1"]),
])
def test_private_addresses_are_refused_and_never_connected_to(fn, connects, url, resolves_to):
    resolver = (lambda host: list(resolves_to)) if resolves_to else None
    result = run_http(url.format(port=fn.port), EVENT, limits=LIMITS, allow_private=False,
                      resolver=resolver)
    assert (result.status_code, result.succeeded) == (502, False)
    assert error_of(result)["errorType"] == "HTTPFunction.Refused"
    assert result.failure_reason.startswith("the function's URL is refused: ")
    assert "non-public address" in result.failure_reason
    assert connects == [] and fn.connections == 0


def test_dns_rebinding_connects_to_the_address_that_was_checked(fn, connects):
    """The host resolves to a public address when checked and to 127.0.0.1 after: the only
    connection attempted is to the public one, and the local server is never reached."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    result = run_http(f"http://rebind.example:{fn.port}/json", EVENT, limits=LIMITS,
                      allow_private=False, resolver=lambda host: answers.pop(0))
    assert connects == [("93.184.216.34", fn.port)]
    assert answers == [["127.0.0.1"]]  # never asked again
    assert fn.connections == 0
    assert result.status_code == 502


def test_the_pinned_address_is_the_one_reached(servers):
    """The same port on 127.0.0.1 and 127.0.0.2: the name resolves to the first when checked
    and to the second after; the first gets the POST, with the URL's host name."""
    checked = _start("127.0.0.1")
    other = _start("127.0.0.2", checked.port)
    servers += [checked, other]
    answers = [["127.0.0.1"], ["127.0.0.2"]]
    result = run_http(f"http://fn.invalid:{checked.port}/json", EVENT, limits=LIMITS,
                      allow_private=True, resolver=lambda host: answers.pop(0))
    assert result.status_code == 200
    assert (checked.connections, other.connections) == (1, 0)
    assert checked.requests[0]["host"] == f"fn.invalid:{checked.port}"


# --- the URL's shape, at creation --------------------------------------------------------


@pytest.mark.parametrize("url", ["http://h.example", "https://h.example:8443/p?q=1",
                                 "http://10.0.0.1/x", "http://[::1]:80/"])
def test_a_well_formed_url_is_accepted_as_given(url):
    assert outbound.check_url_shape(url) == url


@pytest.mark.parametrize(("url", "detail"), [
    ("ftp://h.example/x", "not an http(s) URL"),
    ("file:///etc/passwd", "not an http(s) URL"),
    ("http://", "not an http(s) URL"),
    ("h.example/x", "not an http(s) URL"),
    ("http://h.example:99999/", "bad port"),
    ("http://h.example/" + "a" * 2048, "at most 2048 characters"),
    ("http://exa mple.com/", "ASCII without spaces"),
    ("http://héllo.example/", "ASCII without spaces"),
    ("http://h.example/\r\nX-Injected: 1", "ASCII without spaces"),
    (42, "must be a string"),
])
def test_a_malformed_url_is_a_clear_invalid_request(url, detail):
    with pytest.raises(InvalidRequest) as raised:
        outbound.check_url_shape(url)
    assert raised.value.status == 400
    assert raised.value.message == "invalid url" and detail in raised.value.detail


def test_the_template_never_allows_private_http_functions():
    """Only the local stack (and tests) allow them; a deployed platform refuses them."""
    variables = TEMPLATE.globals["Function"]["Environment"]["Variables"]
    assert "ALLOW_PRIVATE_HTTP_FUNCTIONS" not in variables


# --- through the executor ---------------------------------------------------------------


class NoCode:
    """A runner and a Lambda client that fail the test if any code were run."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("an HTTP function ran code")

    def run(self, *args, **kwargs):
        raise AssertionError("an HTTP function ran its Lambda")


def executor(tmp_path: Path, *, allow_private: bool, lambdas=None) -> Executor:
    settings = get_settings().model_copy(update={"allow_private_http_functions": allow_private})
    return Executor(wiring.tasks(), wiring.functions(), wiring.blobs(), CodeCache(tmp_path),
                    "cell-http", settings, NoCode(), lambdas=lambdas)


def http_task(url: str, body=None, query=None) -> tuple[str, str]:
    """An HTTP function and a task of it, created through the services."""
    function = FunctionService.from_env().create(ALICE, NewFunction(name="h", lang="http",
                                                                    url=url))
    data = json.dumps(body).encode()
    task = TaskService.from_env().create(ALICE, function.id, body=body, query=query or {},
                                         size=len(data))
    return function.id, task.task_guid


@pytest.mark.parametrize("isolation", ["process", "lambda"])
def test_an_http_function_s_task_is_a_post_and_its_answer_the_result(
        backend, tmp_path, fn, isolation):
    function_id, task_id = http_task(fn.url("/json"), {"n": 1}, {"mode": "x"})
    lambdas = NoCode() if isolation == "lambda" else None
    assert executor(tmp_path, allow_private=True, lambdas=lambdas).run(task_id) == "succeeded"
    (request,) = fn.requests
    assert request["event"] == {"body": {"n": 1}, "query": {"mode": "x"}, "taskId": task_id,
                                "functionId": function_id}
    result = TaskService.from_env().result(ALICE, task_id)
    assert (result.status, result.headers, result.body) == (
        200, {"Content-Type": "application/json"}, b'{"answer": 42}')
    task = wiring.tasks().get(task_id)
    assert (task.lang, task.url, task.progress, task.failed) == ("http", fn.url("/json"), 100,
                                                                  False)


def test_a_binary_answer_is_replayed_byte_for_byte(backend, tmp_path, fn):
    _, task_id = http_task(fn.url("/binary"))
    assert executor(tmp_path, allow_private=True).run(task_id) == "succeeded"
    result = TaskService.from_env().result(ALICE, task_id)
    assert (result.status, result.headers["Content-Type"], result.body) == (200, "image/png",
                                                                            BINARY)


def test_a_non_2xx_answer_fails_the_task_and_is_its_result(backend, tmp_path, fn):
    _, task_id = http_task(fn.url("/teapot"))
    assert executor(tmp_path, allow_private=True).run(task_id) == "failed"
    task = wiring.tasks().get(task_id)
    assert (task.state, task.failed, task.failure_reason) == (
        "Completed", True, "the function's URL answered 418")
    result = TaskService.from_env().result(ALICE, task_id)
    assert (result.status, result.body) == (418, b"short and stout")


def test_a_private_url_fails_the_task_unconnected_where_not_allowed(backend, tmp_path, fn):
    _, task_id = http_task(fn.url("/json"))
    assert executor(tmp_path, allow_private=False).run(task_id) == "failed"
    task = wiring.tasks().get(task_id)
    assert task.failure_reason.startswith("the function's URL is refused: ")
    assert fn.connections == 0
    assert TaskService.from_env().result(ALICE, task_id).status == 502


def test_a_task_keeps_the_url_its_function_had_when_it_was_created(backend, tmp_path, fn):
    """The URL is copied into the task (run_fields): the executor reads no function."""
    function = FunctionService.from_env().create(
        ALICE, NewFunction(name="h", lang="http", url=fn.url("/text")))
    task_id = ids.new_id()
    at = now_ns()
    wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner="alice", created_at=at,
                                      updated_at=at, input={"body": None, "query": {}},
                                      **function.run_fields()))
    FunctionService.from_env().delete(ALICE, function.id)
    assert executor(tmp_path, allow_private=True).run(task_id) == "succeeded"
    assert TaskService.from_env().result(ALICE, task_id).body == "héllo wörld".encode()


@pytest.mark.parametrize("address", ["64:ff9b::a00:1", "::127.0.0.1", "::ffff:0:7f00:1"])
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_refused(address):
    """Python calls these global; through NAT64 the first reaches 10.0.0.1."""
    from taskfn.outbound import RefusedURL, check_url

    with pytest.raises(RefusedURL):
        check_url("http://rebound.example/", allow_private=False, resolver=lambda _: [address])
