"""Capabilities that bind and HTTP functions, through `taskfn local` over real HTTP: an HTTP
function pointed at a server of this test answers through /v1/task/{id}/result; capabilities
set with POST /v1/function/{id}/capabilities end a run at its timeout (504) and at its memory
(a clear memory error)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e

SLEEPER = "import time\ndef handler(event, context):\n    time.sleep(30)\n    return 'awake'\n"
HOG = ("def handler(event, context):\n"
       "    hoard = bytearray(512 * 1024 * 1024)\n"
       "    return len(hoard)\n")


class _Function(BaseHTTPRequestHandler):
    """An HTTP function's server: keeps each event, answers 201 text/plain."""

    events: list[dict] = []

    def do_POST(self) -> None:
        type(self).events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        body = b"hello from the function's server"
        self.send_response(201)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Function.events = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Function)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()


def create(user: Client, body: dict) -> str:
    created = user.request("POST", "/v1/function", body)
    assert created.status == 201, created
    return created.json()["id"]


def run(user: Client, function_id: str, query: str = "", body=None) -> str:
    answer = user.request("POST", f"/v1/task/{function_id}{query}", body)
    assert answer.status == 201, answer
    return answer.json()["id"]


def test_an_http_function_answers_with_its_server_s_answer(user: Client, server: str):
    function_id = create(user, {"name": "hook", "lang": "HTTP", "url": server})
    shown = user.request("GET", f"/v1/function/{function_id}").json()
    assert (shown["lang"], shown["url"]) == ("http", server)
    task_id = run(user, function_id, "?page=2", {"name": "John Doe"})
    result = user.wait_result(task_id)
    assert (result.status, result.headers["Content-Type"], result.body) == (
        201, "text/plain; charset=utf-8", b"hello from the function's server")
    assert _Function.events == [{"body": {"name": "John Doe"}, "query": {"page": "2"},
                                 "taskId": task_id, "functionId": function_id}]


@pytest.mark.parametrize(("body", "detail"), [
    ({"name": "h", "lang": "HTTP"}, "lang HTTP needs a url"),
    ({"name": "h", "lang": "PY", "url": "http://h.example/"}, "lang HTTP needs a url"),
    ({"name": "h", "lang": "HTTP", "url": "ftp://h.example/"}, "not an http(s) URL"),
    ({"name": "h", "lang": "HTTP", "url": "http://h.example/" + "a" * 2048}, "2048"),
    ({"name": "h", "lang": "HTTP", "url": "http://h.example/", "source": "x = 1"},
     "not source"),
])
def test_a_bad_http_function_is_a_400(user: Client, body: dict, detail: str):
    answer = user.request("POST", "/v1/function", body)
    assert answer.status == 400, answer
    assert detail in json.dumps(answer.json())


def test_a_run_past_its_timeout_capability_is_a_504(user: Client):
    function_id = create(user, {"name": "sleeper", "lang": "PY", "source": SLEEPER})
    answer = user.request("POST", f"/v1/function/{function_id}/capabilities", {"timeout": 10})
    assert answer.status == 204, answer
    result = user.wait_result(run(user, function_id), timeout=90)
    assert result.status == 504, result
    assert result.json() == {"errorType": "TimeoutError", "errorMessage": "timed out after 10 s"}


def test_a_run_past_its_memory_capability_is_a_clear_memory_error(user: Client):
    function_id = create(user, {"name": "hog", "lang": "PY", "source": HOG})
    answer = user.request("POST", f"/v1/function/{function_id}/capabilities", {"memSize": 128})
    assert answer.status == 204, answer
    task_id = run(user, function_id)
    result = user.wait_result(task_id)
    assert result.status == 500, result
    assert result.json() == {"errorType": "MemoryError",
                             "errorMessage": "out of memory (memory limit 128 MB)"}
    shown = user.request("GET", f"/v1/task/{task_id}").json()
    assert shown["capabilities"]["memSize"] == 128
