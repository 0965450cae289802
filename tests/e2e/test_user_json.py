"""User JSON over HTTP (issue 9): whatever JSON allows is kept exactly as sent and reaches the
function unchanged, whatever it cannot represent is a 400 in the API's own shape, and one
user's odd input breaks nothing for anybody (reads, the executor, task events)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import Client
from .test_task_events import follow

pytestmark = pytest.mark.e2e

ECHO = "def handler(event, context):\n    return {'body': event['body'], 'query': event['query']}\n"


@pytest.fixture(scope="module")
def echo(user: Client) -> str:
    created = user.request("POST", "/v1/function", {"name": "echo", "lang": "PY", "source": ECHO})
    assert created.status == 201, created
    return created.json()["id"]


def run(user: Client, echo: str, body: bytes | None, *, query: str = "",
        content_type: str = "application/json") -> dict:
    created = user.request("POST", f"/v1/task/{echo}{query}", body, content_type=content_type)
    assert created.status == 201, created
    task_id = created.json()["id"]
    result = user.wait_result(task_id)
    assert result.status == 200, result
    read = user.request("GET", f"/v1/task/{task_id}")
    assert read.status == 200, read
    return result.json()


@pytest.mark.parametrize("text", [
    b'{"":1}',
    b'{"a":{"":{"":[]}}}',
    b'{"n":123456789012345678901234567890123456789012345}',
    b'{"big":1e308,"small":-1e-300,"zero":-0.0}',
    b'[' * 60 + b']' * 60,
    b'{"s":"\\u00e9\\ud83d\\ude00\\u0000"}',
    b'"just a string"',
    b'[]',
])
def test_any_json_reaches_the_function_exactly_as_sent(user, echo, text):
    assert run(user, echo, text)["body"] == json.loads(text)


def test_odd_query_names_reach_the_function(user, echo):
    assert run(user, echo, None, query="?=x&a=")["query"] == {"": "x", "a": ""}


@pytest.mark.parametrize("text", [
    b'{"a":NaN}', b'[Infinity]', b'{"a":-Infinity}', b'{"a":1e400}', b'[-1e999]',
    b'{"a":"\\ud800"}', b'["\\udfff x"]',
    b'[' * 65 + b']' * 65, b'[' * 1000 + b']' * 1000, b'{"a":' * 5000 + b'1' + b'}' * 5000,
    b'{"a":' + b'9' * 5000 + b'}',
])
def test_json_that_cannot_be_kept_is_a_clear_400(user, echo, text):
    started = time.monotonic()
    answer = user.request("POST", f"/v1/task/{echo}", text, content_type="application/json")
    assert answer.status == 400, answer
    assert set(answer.json()) <= {"message", "detail"} and answer.json()["message"]
    assert time.monotonic() - started < 5  # refused at once, not after retries


def test_a_non_json_body_is_text_for_the_function(user, echo):
    assert run(user, echo, b"NaN", content_type="text/plain")["body"] == "NaN"
    deep = b"[" * 100  # not JSON, and deeper than JSON may nest: text all the same
    assert run(user, echo, deep, content_type="text/plain")["body"] == deep.decode()


def test_the_cell_api_keeps_odd_definitions_and_inputs(user, echo):
    guid = f"odd-{uuid.uuid4().hex}"
    deep: list = [1]
    for _ in range(40):  # deeper than a DynamoDB map nests
        deep = [deep]
    definition = {"function_id": echo, "input": {"": [1, {"": None}]}, "annotation": "x",
                  "": {"deep": deep}}
    desired = user.request("POST", "/v1/tasks/desire.r2", {
        "task_guid": guid, "domain": "odd", "task_definition": definition})
    assert desired.json() == {"error": None}, desired
    deadline = time.monotonic() + 60
    while True:
        task = user.request("POST", "/v1/tasks/get_by_task_guid.r3", {"task_guid": guid}).json()
        assert task["error"] is None, task
        if task["task"]["state"] in ("Completed", "Resolving") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    view = task["task"]
    assert view["state"] == "Completed" and not view["failed"], view
    assert view["input"] == {"": [1, {"": None}]}
    assert view[""] == definition[""]
    assert json.loads(view["result"])["body"] == {"": [1, {"": None}]}

    for text in (b'{"task_guid":"x-1","domain":"d","task_definition":{"input":NaN}}',
                 b'{"task_guid":"x-1","domain":"d","task_definition":{"a":"\\ud800"}}'):
        refused = user.request("POST", "/v1/tasks/desire.r2", text,
                               content_type="application/json")
        assert refused.status == 200 and refused.json()["error"]["type"] == "InvalidRequest"


def test_task_events_keep_flowing_after_odd_input(stack, echo, user):
    _, position = follow(user, None, wait=0)
    odd = user.request("POST", f"/v1/task/{echo}?=x", b'{"":{"":1}}',
                       content_type="application/json")
    assert odd.status == 201, odd
    assert user.wait_result(odd.json()["id"]).status == 200
    plain = user.request("POST", f"/v1/task/{echo}", b'{"a":1}', content_type="application/json")
    assert user.wait_result(plain.json()["id"]).status == 200

    seen: list[dict] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events, position = follow(user, position)
        seen.extend(events)
        if sum(plain.json()["id"] in e["data"] and "Completed" in e["data"] for e in seen):
            break
    assert any(odd.json()["id"] in e["data"] for e in seen)
    assert any(plain.json()["id"] in e["data"] for e in seen)
