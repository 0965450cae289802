"""Task events over HTTP through `taskfn local`: the table's stream, the events Lambda, and
/v1/events/tasks.r1 as server-sent events that resume from Last-Event-ID."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.helpers import parse_sse

from .conftest import Client

pytestmark = pytest.mark.e2e


def follow(client: Client, last_id: str | None, wait: float = 2) -> tuple[list[dict], str]:
    """One request: the events it answers and the id to send next."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    answer = client.request("GET", f"/v1/events/tasks.r1?wait={wait}", headers=headers)
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    fields = parse_sse(answer.body.decode())
    events = [f for f in fields if "event" in f]
    ids = [f["id"] for f in fields if "id" in f]
    return events, ids[-1] if ids else last_id


@pytest.fixture(scope="module")
def reader(stack: Client) -> Client:
    answer = stack.request("POST", "/v1/tokens", {"user": f"events-{uuid.uuid4().hex[:8]}",
                                                  "scope": "user"})
    assert answer.status == 201, answer
    return stack.as_user(answer.json()["token"])


def test_a_task_s_events_arrive_in_order_and_a_reader_resumes_from_its_last_id(reader):
    _, position = follow(reader, None, wait=0)
    assert position  # even with nothing to say, the stream gives a place to resume from

    created = reader.request("POST", "/v1/function", {
        "name": "events", "lang": "PY", "source": "def handler(event, context):\n    return 7\n"})
    assert created.status == 201, created
    task_guid = f"e2e-{uuid.uuid4().hex}"
    desired = reader.request("POST", "/v1/tasks/desire.r2", {
        "task_guid": task_guid, "domain": "e2e-events",
        "task_definition": {"function_id": created.json()["id"]}})
    assert desired.json() == {"error": None}

    seen: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        events, position = follow(reader, position)
        seen.extend(events)
        states = [json.loads(e["data"]).get("after", {}).get("state") for e in seen]
        if "Completed" in states:
            break
    mine = [e for e in seen if task_guid in e["data"]]
    assert [e["event"] for e in mine] == ["task_created", "task_changed", "task_changed"]
    datas = [json.loads(e["data"]) for e in mine]
    assert datas[0]["task"]["state"] == "Pending"
    assert [(d["before"]["state"], d["after"]["state"]) for d in datas[1:]] == [
        ("Pending", "Running"), ("Running", "Completed")]
    assert datas[2]["after"]["result"] == "7"
    ids = [e["id"] for e in seen]
    assert len(set(ids)) == len(ids)

    # Reconnecting with the last id: nothing is repeated; with an old id, the rest again.
    again, _ = follow(reader, position, wait=0.5)
    assert again == []
    replay, _ = follow(reader, mine[0]["id"], wait=0)
    assert [e["id"] for e in replay][:2] == [mine[1]["id"], mine[2]["id"]]


def test_a_bad_last_event_id_answers_a_bbs_error(reader):
    answer = reader.request("GET", "/v1/events/tasks.r1", headers={"Last-Event-ID": "nope"})
    assert answer.status == 200
    assert answer.json()["error"]["type"] == "InvalidRequest"


def test_the_events_route_needs_a_token(stack):
    anonymous = Client(stack.url)
    assert anonymous.request("GET", "/v1/events/tasks.r1?wait=0").status == 401
