"""The Cell API through `taskfn local` over real HTTP: a user desires, cells race to start,
one completes; a task without placement tags runs by itself in the built-in executor."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cells(stack: Client) -> tuple[Client, Client]:
    tokens = []
    for name in ("cell-1", "cell-2"):
        answer = stack.request("POST", f"/v1/node/{name}", {})  # shared: the admin's nodes
        assert answer.status == 201, answer
        tokens.append(stack.as_user(answer.json()["token"]))
    return tokens[0], tokens[1]


def bbs(client: Client, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """One Cell API call: always HTTP 200, any error inside the body."""
    answer = client.request("POST", f"/v1/tasks/{route}", body)
    assert answer.status == 200, answer
    return answer.json()


def guid() -> str:
    return f"e2e-{uuid.uuid4().hex}"


def test_an_external_cell_places_starts_and_completes_a_tagged_task(user, cells):
    cell_1, cell_2 = cells
    task_guid, domain = guid(), f"e2e-{uuid.uuid4().hex[:8]}"
    desired = bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain,
                                      "task_definition": {"placement_tags": ["gpu"],
                                                          "annotation": "e2e"}})
    assert desired == {"error": None}

    listed = bbs(cell_1, "list.r3", {"domain": domain})["tasks"]
    assert [(t["task_guid"], t["state"], t["placement_tags"]) for t in listed] == [
        (task_guid, "Pending", ["gpu"])]

    answers: dict[str, dict] = {}
    barrier = threading.Barrier(2)

    def start(name: str, client: Client) -> None:
        barrier.wait()
        answers[name] = bbs(client, "start", {"task_guid": task_guid, "cell_id": name})

    threads = [threading.Thread(target=start, args=(n, c))
               for n, c in (("cell-1", cell_1), ("cell-2", cell_2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, a in answers.items() if a.get("should_start")]
    assert len(winners) == 1, answers
    (loser,) = set(answers) - set(winners)
    assert answers[loser]["error"]["type"] == "InvalidStateTransition"
    winner = winners[0]
    clients = {"cell-1": cell_1, "cell-2": cell_2}

    running = bbs(clients[winner], "list.r3", {"domain": domain, "cell_id": winner})["tasks"]
    assert [t["state"] for t in running] == ["Running"]
    wrong = bbs(clients[loser], "complete", {"task_guid": task_guid, "cell_id": loser,
                                             "result": "mine"})
    assert wrong["error"]["type"] == "RunningOnDifferentCell"
    # Nor may the loser's token pass itself off as the winner: a cell token is its node's.
    posing = clients[loser].request("POST", "/v1/tasks/complete", {
        "task_guid": task_guid, "cell_id": winner, "failed": False, "result": "stolen"})
    assert posing.status == 403 and posing.json()["error"]["type"] == "Forbidden", posing
    done = bbs(clients[winner], "complete", {"task_guid": task_guid, "cell_id": winner,
                                             "failed": False, "result": "42"})
    assert done == {"error": None}

    task = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
    assert (task["state"], task["failed"], task["result"], task["cell_id"]) == (
        "Completed", False, "42", "")
    assert task["annotation"] == "e2e" and task["first_completed_at"] > 0


def test_an_untagged_task_runs_by_itself_in_the_built_in_executor(user, cells):
    created = user.request("POST", "/v1/function", {
        "name": "double", "lang": "PY",
        "source": "def handler(event, context):\n    return event['body']['n'] * 2\n"})
    assert created.status == 201, created
    task_guid = guid()
    desired = bbs(user, "desire.r2", {
        "task_guid": task_guid, "domain": "e2e-built-in",
        "task_definition": {"function_id": created.json()["id"], "input": {"n": 21}}})
    assert desired == {"error": None}
    deadline = time.monotonic() + 60
    while True:
        task = bbs(cells[0], "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
        if task["state"] == "Completed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (task["state"], task["failed"], task["result"]) == ("Completed", False, "42")
    # the same task through the platform API
    assert user.wait_result(task_guid).body == b"42"


def test_bad_requests_answer_200_with_an_error_and_scopes_are_enforced(user, cells):
    bad = bbs(user, "desire.r2", {"task_guid": "not a guid!", "domain": "d",
                                  "task_definition": {"placement_tags": ["x"]}})
    assert bad["error"]["type"] == "InvalidRequest"
    no_function = bbs(user, "desire.r2", {"task_guid": guid(), "domain": "d",
                                          "task_definition": {}})
    assert no_function["error"]["type"] == "InvalidRequest"
    assert "function_id" in no_function["error"]["message"]
    malformed = user.request("POST", "/v1/tasks/list.r3", "{nope",
                             content_type="application/json")
    assert (malformed.status, malformed.json()["error"]["type"]) == (200, "InvalidRequest")
    unknown = bbs(user, "get_by_task_guid.r3", {"task_guid": guid()})
    assert unknown["error"]["type"] == "ResourceNotFound"
    as_user = user.request("POST", "/v1/tasks/start", {"task_guid": guid(), "cell_id": "c"})
    assert (as_user.status, as_user.json()["error"]["type"]) == (403, "Forbidden")
    as_cell = cells[0].request("POST", "/v1/tasks/desire.r2", {"task_guid": guid()})
    assert as_cell.status == 403
    anonymous = user.as_user("tfn_no-such-token-0000000000").request(
        "POST", "/v1/tasks/list.r3", {"domain": "d"})
    assert (anonymous.status, anonymous.json()["error"]["type"]) == (401, "Unauthorized")


def test_a_completed_task_calls_its_callback_and_is_deleted(user, cells):
    """The callback goes through the callback queue and its Lambda, after the API answered;
    the local stack allows the 127.0.0.1 server the SSRF guard refuses in AWS."""
    received: list[dict] = []
    arrived = threading.Event()

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            arrived.set()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cell, _ = cells
        task_guid, domain = guid(), f"e2e-{uuid.uuid4().hex[:8]}"
        url = f"http://127.0.0.1:{server.server_address[1]}/done"
        definition = {"placement_tags": ["cb"], "annotation": "ping",
                      "completion_callback_url": url}
        assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain,
                                       "task_definition": definition}) == {"error": None}
        assert bbs(cell, "start", {"task_guid": task_guid, "cell_id": "cell-1"})["should_start"]
        assert bbs(cell, "complete", {"task_guid": task_guid, "cell_id": "cell-1",
                                      "failed": False, "result": "7"}) == {"error": None}
        assert arrived.wait(30), "no callback"
        deadline = time.monotonic() + 10
        while True:
            gone = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})
            if gone.get("error") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        server.shutdown()
        server.server_close()
    assert [(r["task_guid"], r["result"], r["annotation"], r["failed"]) for r in received] == [
        (task_guid, "7", "ping", False)]
    assert gone["error"]["type"] == "ResourceNotFound"
