"""Public endpoints as a new user drives them: `taskfn local` over real HTTP, the public
routes without a token (the local gateway runs no authorizer for them and gives the handler the
real peer's address as sourceIp), real child processes running the function."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from taskfn.local.stack import LocalStack

from .conftest import Answer, Client, in_process_stack

pytestmark = pytest.mark.e2e

ADMIN = "tfn_public-admin-token-0123456789"
WINDOW_S = 4  # the public result's window, shortened from 300 s by its setting
SOURCE = "def handler(event, context):\n    return {'hi': event['body'], 'q': event['query']}\n"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    with in_process_stack(ADMIN, "public", {"PUBLIC_RESULT_SECONDS": str(WINDOW_S)}) as stack:
        yield stack


@pytest.fixture(scope="module")
def owner(local: LocalStack) -> Client:
    answer = Client(local.url, ADMIN).request("POST", "/v1/tokens", {"user": "publisher"})
    assert answer.status == 201, answer
    return Client(local.url, answer.json()["token"])


@pytest.fixture(scope="module")
def anyone(local: LocalStack) -> Client:
    return Client(local.url)


def created(answer: Answer) -> str:
    assert answer.status == 201, answer
    return answer.json()["id"]


def function(owner: Client) -> str:
    return created(owner.request("POST", "/v1/function",
                                 {"name": "public", "lang": "PY", "source": SOURCE}))


def public_result(anyone: Client, task_id: str, timeout: float = 60) -> Answer:
    """Poll the public result until the task has finished."""
    deadline = time.monotonic() + timeout
    while True:
        answer = anyone.request("GET", f"/gc/{task_id}/result")
        if answer.status != 404 or "not finished" not in answer.json()["message"] or \
                time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_daily_limit_of_3_runs_three_calls_and_the_results_go_private(owner, anyone):
    function_id = function(owner)
    endpoint_id = created(owner.request("POST", f"/v1/endpoint/{function_id}",
                                        {"description": "hello", "dailyLimit": 3}))
    tasks = [created(anyone.request("POST", f"/gc/{endpoint_id}?n={n}", {"call": n}))
             for n in range(3)]
    refused = anyone.request("POST", f"/gc/{endpoint_id}", {"call": 3})
    assert refused.status == 429 and refused.json()["message"] == "daily limit reached"
    for n, task_id in enumerate(tasks):
        answer = public_result(anyone, task_id)
        assert (answer.status, answer.json()) == (200, {"hi": {"call": n}, "q": {"n": str(n)}})
    metrics = owner.request("GET", f"/v1/endpoint/{endpoint_id}/metrics").json()
    assert metrics["todayTasks"] == metrics["weekTasks"] == 3
    time.sleep(WINDOW_S + 0.5)  # the public window, shortened by its setting, is over
    gone = anyone.request("GET", f"/gc/{tasks[0]}/result")
    assert gone.status == 404, gone
    mine = owner.request("GET", f"/gc/{tasks[0]}/result")
    assert (mine.status, mine.json()) == (200, {"hi": {"call": 0}, "q": {"n": "0"}})
    assert owner.request("GET", f"/v1/task/{tasks[0]}/result").body == mine.body


def test_the_owner_s_routes_over_http(owner, anyone, local):
    function_id = function(owner)
    endpoint_id = created(owner.request("POST", f"/v1/endpoint/{function_id}", {}))
    assert owner.request("PATCH", f"/v1/endpoint/{endpoint_id}",
                         {"ip": ["127.0.0.1"]}).status == 204
    seen = owner.request("GET", f"/v1/endpoint/{endpoint_id}").json()
    assert (seen["functionId"], seen["ip"], seen["dailyLimit"]) == (function_id,
                                                                    ["127.0.0.1"], -1)
    listed = owner.request("GET", f"/v1/endpoint/list?functionId={function_id}").json()
    assert [item["id"] for item in listed["results"]] == [endpoint_id]
    assert anyone.request("GET", f"/v1/endpoint/{endpoint_id}").status == 401
    bad = owner.request("POST", f"/v1/endpoint/{function_id}", {"origin": ["http://x.example"]})
    assert bad.status == 400 and set(bad.json()) <= {"message", "detail"}
    assert owner.request("GET", "/v1/endpoint/list?limit=2").status == 400
    assert owner.request("DELETE", f"/v1/endpoint/{endpoint_id}").status == 204
    assert anyone.request("POST", f"/gc/{endpoint_id}", {}).status == 404


def test_the_caller_s_address_is_the_peer_s_not_a_header_s(owner, anyone):
    """The attack over HTTP: X-Forwarded-For naming the one allowed address gets nothing;
    the gateway's source IP (this test's own, 127.0.0.1) is what counts."""
    function_id = function(owner)
    elsewhere = created(owner.request("POST", f"/v1/endpoint/{function_id}",
                                      {"ip": ["198.51.100.7"]}))
    forged = anyone.request("POST", f"/gc/{elsewhere}", {}, headers={
        "X-Forwarded-For": "198.51.100.7", "X-Real-IP": "198.51.100.7"})
    assert forged.status == 403 and forged.json()["message"] == "address not allowed"
    here = created(owner.request("POST", f"/v1/endpoint/{function_id}",
                                 {"ip": ["127.0.0.1"], "origin": ["https://app.example"]}))
    created(anyone.request("POST", f"/gc/{here}", {}, headers={
        "X-Forwarded-For": "198.51.100.7", "Origin": "https://app.example"}))
    wrong_origin = anyone.request("POST", f"/gc/{here}", {},
                                  headers={"Origin": "https://evil.example"})
    assert wrong_origin.status == 403 and wrong_origin.json()["message"] == "origin not allowed"
