"""Triggers as a user drives them over HTTP (`taskfn local`, its stream pollers and executor):
a trigger on 200 with includeResult runs the next function with the first one's response; one
on 500 does not fire for a success."""

from __future__ import annotations

import time
import uuid

import pytest

from .conftest import Answer, Client

pytestmark = pytest.mark.e2e

FIRST = '''
def handler(event, context):
    return {"sum": event["body"]["a"] + event["body"]["b"]}
'''
ECHO = '''
def handler(event, context):
    return {"got": event["body"]}
'''


def created(answer: Answer) -> str:
    assert answer.status == 201, answer
    return answer.json()["id"]


def tasks_of(user: Client, function_id: str) -> list[dict]:
    answer = user.request("GET", f"/v1/task/list?functionId={function_id}")
    assert answer.status == 200, answer
    body = answer.json()
    return body["results"] if isinstance(body, dict) else body


def wait_tasks(user: Client, function_id: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = tasks_of(user, function_id)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_trigger_runs_the_next_function_with_the_result_on_its_status_only(stack: Client):
    token = stack.request("POST", "/v1/tokens", {"user": f"tr-{uuid.uuid4().hex[:8]}"})
    user = stack.as_user(token.json()["token"])
    first = created(user.request("POST", "/v1/function", {"name": "first", "lang": "PY",
                                                          "source": FIRST}))
    echo = created(user.request("POST", "/v1/function", {"name": "echo", "lang": "PY",
                                                         "source": ECHO}))
    never = created(user.request("POST", "/v1/function", {"name": "never", "lang": "PY",
                                                          "source": ECHO}))
    chained = created(user.request("POST", "/v1/trigger", {
        "functionId": first, "nextId": echo, "status": 200, "includeResult": True}))
    created(user.request("POST", "/v1/trigger", {
        "functionId": first, "nextId": never, "status": 500, "includeResult": True}))
    assert user.request("GET", f"/v1/trigger/{chained}").json()["nextId"] == echo
    task = created(user.request("POST", f"/v1/task/{first}", {"a": 2, "b": 3}))
    assert user.wait_result(task).status == 200
    (child,) = wait_tasks(user, echo, 1)
    result = user.wait_result(child["id"])
    assert (result.status, result.json()) == (200, {"got": {"sum": 5}})
    assert user.request("GET", f"/v1/task/{child['id']}").json()["triggeredBy"] == task
    # The 500 trigger's function: nothing, once the 200 one has long fired.
    assert tasks_of(user, never) == []
