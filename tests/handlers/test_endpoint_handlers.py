"""The public endpoint handlers invoked with their events/ files and with generated events:
the owner's routes in GreenCloud's shapes, the public call without a token (and the attack of
a forged X-Forwarded-For), the public result without a token and with the owner's."""

from __future__ import annotations

import copy
import json

import pytest

from taskfn import lifecycle, wiring
from taskfn.models import TaskRecord, now_ns
from taskfn.stores.endpoints import EndpointRecord, EndpointStore
from tests.handlers.test_events import (  # noqa: F401 - seeded is a fixture
    FID,
    SAMPLE_TOKEN,
    invoke,
    load_event,
    seeded,
)

EID = "6560f1a0eeeeeeeeeeeeeeee"  # the endpoint the sample events name


def seed_endpoint(**fields) -> None:
    EndpointStore(wiring.table()).put_new(EndpointRecord(
        id=EID, owner="alice", function_id=FID, created_at=now_ns(),
        **{"origin": ["https://example.com"], **fields}))


def body(answer: dict):
    return json.loads(answer["body"])


@pytest.fixture
def endpoint(seeded):  # noqa: F811 - the fixture imported above
    seed_endpoint()
    return EID


def test_the_owner_s_routes_answer_their_samples(endpoint):
    created = invoke("CreateEndpointFunction", load_event("CreateEndpointFunction"))
    assert created["statusCode"] == 201, created
    got = invoke("GetEndpointFunction", load_event("GetEndpointFunction"))
    assert got["statusCode"] == 200
    assert set(body(got)) == {"id", "functionId", "description", "tags", "dailyLimit",
                              "origin", "ip", "timeLimit", "createdAt"}
    assert invoke("GetEndpointMetricsFunction", load_event("GetEndpointMetricsFunction"))[
        "body"] == '{"todayTasks":0,"pendingTasks":0,"weekTasks":0}'
    listed = body(invoke("ListEndpointsFunction", load_event("ListEndpointsFunction")))
    assert (listed["totalCount"], listed["pageSize"], listed["pageCount"]) == (2, 10, 1)
    patched = invoke("UpdateEndpointFunction", load_event("UpdateEndpointFunction"))
    assert patched["statusCode"] == 204 and not patched.get("body"), patched
    assert body(invoke("GetEndpointFunction", load_event("GetEndpointFunction")))[
        "dailyLimit"] == -1
    assert invoke("DeleteEndpointFunction", load_event("DeleteEndpointFunction"))[
        "statusCode"] == 204
    assert invoke("GetEndpointFunction", load_event("GetEndpointFunction"))[
        "statusCode"] == 404


@pytest.mark.parametrize(("function_id", "payload", "status"), [
    ("CreateEndpointFunction", "{not json", 400),
    ("CreateEndpointFunction", '{"dailyLimit": -3}', 400),
    ("CreateEndpointFunction", '{"ip": ["1.2.3"]}', 400),
    ("CreateEndpointFunction", '["a list"]', 400),
    ("UpdateEndpointFunction", '{"origin": ["ftp://x"]}', 400),
    ("UpdateEndpointFunction", "{}", 400),
])
def test_bad_bodies_are_400_in_greencloud_s_shape(endpoint, function_id, payload, status):
    event = load_event(function_id)
    event["body"] = payload
    answer = invoke(function_id, event)
    assert answer["statusCode"] == status, answer
    assert set(body(answer)) <= {"message", "detail"} and body(answer)["message"]


def test_another_owner_gets_404_on_every_owner_route(endpoint):
    for function_id in ("CreateEndpointFunction", "UpdateEndpointFunction",
                        "GetEndpointFunction", "GetEndpointMetricsFunction",
                        "DeleteEndpointFunction", "ListEndpointsFunction"):
        event = load_event(function_id)
        event["requestContext"]["authorizer"]["lambda"]["user"] = "bob"
        if function_id in ("CreateEndpointFunction", "UpdateEndpointFunction"):
            event["body"] = '{"dailyLimit": -9}'  # refused, and still a 404
        assert invoke(function_id, event)["statusCode"] == 404, function_id


def test_the_owner_s_routes_need_a_token(endpoint):
    event = load_event("GetEndpointFunction")
    event["requestContext"]["authorizer"]["lambda"]["user"] = ""
    assert invoke("GetEndpointFunction", event)["statusCode"] == 401


def test_the_public_call_answers_its_sample_without_a_token(endpoint):
    answer = invoke("CallEndpointFunction", load_event("CallEndpointFunction"))
    assert answer["statusCode"] == 201, answer
    task = wiring.tasks().get(body(answer)["id"])
    assert task.endpoint_id == EID and task.input == {"body": {"name": "Ada"},
                                                       "query": {"lang": "en"}}


def test_the_public_call_refusals(endpoint):
    event = load_event("CallEndpointFunction")
    event["headers"]["origin"] = "https://evil.example"
    refused = invoke("CallEndpointFunction", event)
    assert (refused["statusCode"], body(refused)["message"]) == (403, "origin not allowed")
    event = load_event("CallEndpointFunction")
    event["body"] = "{not json"
    event["headers"]["content-type"] = "application/json"
    assert invoke("CallEndpointFunction", event)["statusCode"] == 400
    event = load_event("CallEndpointFunction")
    event["pathParameters"] = {"id": "6560f1a0ffffffffffffffff"}
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/gc/6560f1a0ffffffffffffffff"
    assert invoke("CallEndpointFunction", event)["statusCode"] == 404


@pytest.mark.usefixtures("seeded")
def test_a_forged_x_forwarded_for_does_not_pass_the_ip_list():
    """The attack: a caller at 203.0.113.10 claims, in X-Forwarded-For (and the headers
    proxies use), to be the one allowed address. Only API Gateway's sourceIp counts."""
    seed_endpoint(origin=[], ip=["198.51.100.7"])
    event = load_event("CallEndpointFunction")
    assert event["requestContext"]["http"]["sourceIp"] == "203.0.113.10"
    event["headers"].update({"x-forwarded-for": "198.51.100.7", "x-real-ip": "198.51.100.7",
                             "forwarded": "for=198.51.100.7", "true-client-ip": "198.51.100.7"})
    refused = invoke("CallEndpointFunction", event)
    assert (refused["statusCode"], body(refused)["message"]) == (403, "address not allowed")
    event["requestContext"]["http"]["sourceIp"] = "198.51.100.7"
    event["headers"]["x-forwarded-for"] = "203.0.113.10"
    assert invoke("CallEndpointFunction", event)["statusCode"] == 201


@pytest.mark.usefixtures("seeded")
def test_the_daily_limit_is_a_429():
    seed_endpoint(daily_limit=1)
    assert invoke("CallEndpointFunction", load_event("CallEndpointFunction"))[
        "statusCode"] == 201
    refused = invoke("CallEndpointFunction", load_event("CallEndpointFunction"))
    assert (refused["statusCode"], body(refused)["message"]) == (429, "daily limit reached")


def finish(task_id: str) -> None:
    tasks = wiring.tasks()
    tasks.apply(task_id, lifecycle.start("cell-t", now_ns()))
    tasks.apply(task_id, lifecycle.complete("cell-t", now_ns(), failed=False, extra={
        "response_status": 201, "response_headers": {"Content-Type": "text/plain"},
        "response_body": "public hello"}))


def result_event(task_id: str, token: str | None = None) -> dict:
    event = copy.deepcopy(load_event("GetPublicResultFunction"))
    event["pathParameters"] = {"id": task_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/gc/{task_id}/result"
    if token is not None:
        event["headers"]["authorization"] = token
    return event


def test_the_public_result_without_a_token_and_with_the_owner_s(endpoint, monkeypatch):
    task_id = body(invoke("CallEndpointFunction", load_event("CallEndpointFunction")))["id"]
    early = invoke("GetPublicResultFunction", result_event(task_id))
    assert (early["statusCode"], body(early)["message"]) == (404, "task has not finished yet")
    finish(task_id)
    answer = invoke("GetPublicResultFunction", result_event(task_id))
    assert (answer["statusCode"], answer["body"]) == (201, "public hello")
    assert answer["headers"]["Content-Type"] == "text/plain"
    # Past the window (shortened to nothing): 404 without a token, the owner's still reads it.
    from tests.handlers.test_events import handler_module

    monkeypatch.setattr(handler_module("GetPublicResultFunction").public.settings,
                        "public_result_seconds", 0)
    assert invoke("GetPublicResultFunction", result_event(task_id))["statusCode"] == 404
    owned = invoke("GetPublicResultFunction", result_event(task_id, f"Bearer {SAMPLE_TOKEN}"))
    assert (owned["statusCode"], owned["body"]) == (201, "public hello")


@pytest.mark.usefixtures("seeded")
def test_a_task_of_no_endpoint_is_404_without_its_owner_s_token():
    wiring.tasks().put_new(TaskRecord(task_guid="6560f1a0abcdefabcdefabcd", owner="alice",
                                      function_id=FID, created_at=now_ns(),
                                      updated_at=now_ns()))
    finish("6560f1a0abcdefabcdefabcd")
    event = result_event("6560f1a0abcdefabcdefabcd")
    refused = invoke("GetPublicResultFunction", event)
    assert (refused["statusCode"], body(refused)["message"]) == (404, "task not found")
    assert invoke("GetPublicResultFunction", result_event(
        "6560f1a0abcdefabcdefabcd", SAMPLE_TOKEN))["statusCode"] == 201
    assert invoke("GetPublicResultFunction", load_event("GetPublicResultFunction"))[
        "statusCode"] == 404  # the sample's task was made by no endpoint
