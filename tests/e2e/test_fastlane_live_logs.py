"""fastlane's live logs over the local stack's real WebSocket API, followed with the
websockets client as a fastlane client follows …/ws: a running job's lines arrive while it
runs, in order, each once; a late subscriber first gets what was already printed; a finished
job's outputs come framed as upstream frames them; the close codes and reasons are
fastlane's; the stream page's ticket follows only its own job."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import re
import time
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import Client

pytestmark = pytest.mark.e2e

LINES = "sh -c 'for i in 1 2 3 4 5; do echo $i; sleep 1; done'"


class Fastlane:
    def __init__(self, stack: Client, token: str):
        self.url = stack.url
        self.token = token
        self.client = Client(stack.url)
        self.auth = {"Authorization": "Basic " + base64.b64encode(
            f"fastlane:{token}".encode()).decode()}

    def __call__(self, method: str, path: str, body=None):
        return self.client.request(method, path, body, headers=self.auth)

    def raw_get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A GET that does not follow redirects."""
        split = urlsplit(self.url)
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        try:
            connection.request("GET", path, headers=self.auth)
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            connection.close()

    def enqueue(self, task_id: str, **job) -> tuple[str, str]:
        answer = self("POST", f"/tasks/{task_id}", {"image": "alpine", **job})
        assert answer.status == 200, answer
        return answer.json()["jobId"], answer.json()["executionId"]

    def status(self, task_id: str, job_id: str) -> str:
        answer = self("GET", f"/tasks/{task_id}/jobs/{job_id}")
        assert answer.status == 200, answer
        job = answer.json()["job"]
        return job["executions"][0]["status"] if job["executions"] else "none"

    def wait_status(self, task_id: str, job_id: str, wanted: set[str],
                    timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status(task_id, job_id)) not in wanted:
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        return status


@pytest.fixture(scope="module")
def erin(stack: Client) -> Fastlane:
    answer = stack.request("POST", "/v1/tokens", {"user": "erin-live", "scope": "user"})
    return Fastlane(stack, answer.json()["token"])


@pytest.fixture(scope="module")
def frank(stack: Client) -> Fastlane:
    answer = stack.request("POST", "/v1/tokens", {"user": "frank-live", "scope": "user"})
    return Fastlane(stack, answer.json()["token"])


@pytest.fixture(scope="module")
def ws_base(erin: Fastlane) -> str:
    """The local WebSocket API's address, as the /ws redirect names it."""
    job_id, _ = erin.enqueue("live-base", command="true")
    status, headers, _ = erin.raw_get(f"/tasks/live-base/jobs/{job_id}/ws")
    assert status == 307, headers
    split = urlsplit(headers["Location"])
    query = parse_qs(split.query)
    assert split.scheme == "ws" and query.pop("ticket") and query == {
        "task": ["live-base"], "job": [job_id]}
    return f"ws://{split.netloc}"


def socket(base: str, who: Fastlane | None, task_id: str, job_id: str,
           execution_id: str = "", **keywords) -> connect:
    """A websockets connection at fastlane's path for the job (or execution)."""
    path = f"/tasks/{task_id}/jobs/{job_id}" + (
        f"/executions/{execution_id}" if execution_id else "") + "/ws"
    headers = who.auth if who else {}
    return connect(base + path, additional_headers=headers, open_timeout=30, **keywords)


async def received(ws: ClientConnection, on_message=None) -> tuple[list[str], int, str]:
    """Every message until the server closes, and its close code and reason."""
    messages: list[str] = []
    try:
        async for message in ws:
            messages.append(message)
            if on_message is not None:
                await on_message(messages)
    except ConnectionClosed:
        pass
    return messages, ws.close_code, ws.close_reason


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def test_a_running_job_s_lines_arrive_while_it_runs_in_order_each_once(erin, ws_base):
    job_id, _ = erin.enqueue("live-lines", command=LINES)
    erin.wait_status("live-lines", job_id, {"running"})
    seen_running: list[str] = []

    async def follow():
        async def first(messages):
            if len(messages) == 1:  # the job prints for 5 s: it is still running now
                seen_running.append(await asyncio.to_thread(erin.status, "live-lines", job_id))

        async with socket(ws_base, erin, "live-lines", job_id) as ws:
            return await received(ws, first)

    messages, code, reason = run(follow())
    assert "".join(messages) == "1\n2\n3\n4\n5\n"
    assert seen_running == ["running"]
    assert (code, reason) == (1000, "wsdone")
    # And once it has finished, the same job's socket sends its stored outputs, framed.
    erin.wait_status("live-lines", job_id, {"done"})

    async def again():
        async with socket(ws_base, erin, "live-lines", job_id) as ws:
            return await received(ws)

    messages, code, reason = run(again())
    assert "".join(messages) == "EXIT CODE: 0\n1\n2\n3\n4\n5\n-=-\n"
    assert (code, reason) == (1010, "wsdone")


def test_a_late_subscriber_first_gets_what_was_already_printed(erin, ws_base):
    job_id, execution_id = erin.enqueue("live-late", command=LINES)
    erin.wait_status("live-late", job_id, {"running"})
    early: list[str] = []

    async def follow():
        joined = asyncio.Event()
        late: list = []

        async def on_early(messages):
            if "".join(messages).count("\n") >= 2 and not joined.is_set():
                joined.set()
                early.extend(messages)
                late.append(asyncio.create_task(follow_late()))

        async def follow_late():
            async with socket(ws_base, erin, "live-late", job_id, execution_id) as ws:
                return await received(ws)

        async with socket(ws_base, erin, "live-late", job_id) as ws:
            first = await received(ws, on_early)
        return first, await late[0]

    (first, code, reason), (second, late_code, late_reason) = run(follow())
    assert "".join(first) == "".join(second) == "1\n2\n3\n4\n5\n"
    printed_before = "".join(early)
    assert "".join(second).startswith(printed_before) and printed_before.startswith("1\n2\n")
    assert (code, reason) == (late_code, late_reason) == (1000, "wsdone")


def test_a_finished_job_sends_exit_code_stdout_and_stderr_then_1010_wsdone(erin, ws_base):
    job_id, _ = erin.enqueue("live-done", command="sh -c 'echo out; echo err >&2; exit 3'")
    erin.wait_status("live-done", job_id, {"failed"})

    async def follow():
        async with socket(ws_base, erin, "live-done", job_id,
                          subprotocols=["taskfn.close.v1"]) as ws:
            assert ws.subprotocol == "taskfn.close.v1"
            return await received(ws)

    messages, code, reason = run(follow())
    # With the subprotocol, the close also comes in band (API Gateway cannot send it).
    assert messages[-1] == "\u0000close 1010 wsdone"
    assert "".join(messages[:-1]) == "EXIT CODE: 3\nout\n-=-\nerr"
    assert (code, reason) == (1010, "wsdone")


def test_unknown_jobs_close_1000_and_a_job_without_execution_1000_wsretry(
        erin, frank, ws_base):
    scheduled, none = erin.enqueue("live-cron", command="true", cron="0 3 * * *")
    assert none is None
    mine, _ = erin.enqueue("live-mine", command="echo secret")

    async def outcome(who, task_id, job_id):
        async with socket(ws_base, who, task_id, job_id) as ws:
            return await received(ws)

    assert run(outcome(erin, "live-cron", scheduled)) == ([], 1000, "wsretry")
    assert run(outcome(erin, "live-cron", str(uuid.uuid4()))) == ([], 1000, "")
    assert run(outcome(erin, "no-such-group", "not-a-uuid")) == ([], 1000, "")
    # Another owner's job is as unknown: nothing of it is sent.
    assert run(outcome(frank, "live-mine", mine)) == ([], 1000, "")


def test_the_handshake_needs_a_token_or_the_page_s_ticket(erin, frank, ws_base):
    job_id, _ = erin.enqueue("live-auth", command="echo hi")
    other_job, _ = erin.enqueue("live-auth", command="echo other")

    async def status_of(uri, headers=None):
        try:
            async with connect(uri, additional_headers=headers or {}, open_timeout=30):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    path = f"{ws_base}/tasks/live-auth/jobs/{job_id}/ws"
    assert run(status_of(path)) == 401
    assert run(status_of(path, {"Authorization": "Basic " + base64.b64encode(
        b"x:tfn_not-a-token-anybody-has-0123").decode()})) == 401
    assert run(status_of(f"{ws_base}/somewhere/else")) == 404
    # The page's ticket follows its own job, and no other.
    page = erin("GET", f"/tasks/live-auth/jobs/{job_id}/stream")
    ticket = re.search(r"ticket=([A-Za-z0-9_-]+)", page.body.decode()).group(1)
    assert run(status_of(f"{ws_base}/live?task=live-auth&job={job_id}&ticket={ticket}")) == 101
    assert run(status_of(f"{ws_base}/live?ticket={ticket}")) == 101
    assert run(status_of(
        f"{ws_base}/live?task=live-auth&job={other_job}&ticket={ticket}")) == 403
    assert run(status_of(f"{ws_base}/live?ticket=not-a-ticket")) == 401


def test_the_ws_route_redirects_to_the_socket_and_a_client_follows_it(erin, frank, ws_base):
    job_id, execution_id = erin.enqueue("live-redirect", command="echo followed")
    erin.wait_status("live-redirect", job_id, {"done"})
    status, headers, _ = erin.raw_get(
        f"/tasks/live-redirect/jobs/{job_id}/executions/{execution_id}/ws/")
    assert status == 307
    assert parse_qs(urlsplit(headers["Location"]).query)["execution"] == [execution_id]
    assert frank.raw_get(f"/tasks/live-redirect/jobs/{job_id}/ws")[0] == 404

    async def follow():
        # fastlane's own URL, on the HTTP API: websockets follows the 307 (without the
        # Authorization header, to another origin: the ticket in the URL stands for it).
        async with connect(f"{erin.url.replace('http', 'ws', 1)}/tasks/live-redirect/jobs/"
                           f"{job_id}/ws", additional_headers=erin.auth,
                           open_timeout=30) as ws:
            return await received(ws)

    messages, code, reason = run(follow())
    assert "".join(messages) == "EXIT CODE: 0\nfollowed\n-=-\n"
    assert (code, reason) == (1010, "wsdone")


def test_the_stream_page_escapes_ids_and_allows_only_its_own_script(erin, frank):
    task_id = "live-<b>\"'&amp;<img src=x onerror=alert(1)>"
    job_id, _ = erin.enqueue(quote(task_id, safe=""), command="echo hi")
    path = f"/tasks/{quote(task_id, safe='')}/jobs/{job_id}/stream"
    page = erin("GET", path)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    body = page.body.decode()
    assert "<img" not in body and "<b>" not in body and body.count("<script") == 2
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["Content-Security-Policy"])
    assert f'<script nonce="{nonce.group(1)}">' in body
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    config = json.loads(re.search(r'id="config">(.*?)</script>', body, re.S).group(1))
    assert config["taskId"] == task_id and config["jobId"] == job_id
    missing = frank("GET", path)
    assert missing.status == 404 and set(missing.json()) == {"error", "operation"}


def test_pages_and_sockets_of_unknown_executions_are_404_in_fastlane_s_words(erin):
    job_id, _ = erin.enqueue("live-404", command="true")
    other = str(uuid.uuid4())
    for route in ("stream", "ws"):
        answer = erin("GET", f"/tasks/live-404/jobs/{job_id}/executions/{other}/{route}")
        assert answer.status == 404, answer
        assert answer.json()["error"] == f"Job Execution ({other}) not found in job ({job_id})."
        answer = erin("GET", f"/tasks/live-404/jobs/{other}/{route}/")
        assert (answer.status, answer.json()["error"]) == (404, "Job not found in task.")
    anonymous = Client(erin.url).request("GET", f"/tasks/live-404/jobs/{job_id}/stream")
    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")


def test_a_large_output_arrives_whole_in_order_in_messages_of_at_most_32_kb(erin, ws_base):
    job_id, _ = erin.enqueue("live-large", command=(
        "sh -c 'sleep 2; seq 1 20000; sleep 1; seq 20001 40000; echo err >&2; sleep 1'"))
    erin.wait_status("live-large", job_id, {"running"})

    async def follow():
        async with socket(ws_base, erin, "live-large", job_id, max_size=None) as ws:
            return await received(ws)

    messages, code, reason = run(follow())
    lines = "".join(messages).splitlines()
    assert [line for line in lines if line != "err"] == [str(n) for n in range(1, 40001)]
    assert lines.count("err") == 1
    assert max(len(message.encode()) for message in messages) <= 32 * 1024
    assert (code, reason) == (1000, "wsdone")


def test_a_failing_attempt_s_last_lines_reach_its_follower_though_a_retry_follows(
        erin, ws_base):
    """The run's retry moves its task to the next attempt (a new execution id, no container):
    its follower still gets the lines the failing attempt printed last, then wsdone."""
    job_id, execution_id = erin.enqueue(
        "live-retry", command="sh -c 'echo one; sleep 2; echo fatal-reason; exit 3'",
        retries=1)
    erin.wait_status("live-retry", job_id, {"running"})

    async def follow():
        async with socket(ws_base, erin, "live-retry", job_id, execution_id) as ws:
            return await received(ws)

    messages, code, reason = run(follow())
    assert "".join(messages) == "one\nfatal-reason\n"
    assert (code, reason) == (1000, "wsdone")
