"""The trigger handlers invoked with their sample events (events/greencloud/*trigger*.json,
events/triggers/fire.json) against moto: answers, bounds, another owner's 404, and the stream
handler creating the chained task once."""

from __future__ import annotations

import copy
import json

import pytest

from taskfn import wiring
from taskfn.models import now_ns
from taskfn.services.tasks import TaskService
from taskfn.stores.triggers import TriggerRecord, TriggerStore
from tests.handlers.test_events import FID, TID, invoke, load_event, seeded  # noqa: F401

TRID = "6560f1a0eeeeeeeeeeeeeeee"


@pytest.fixture
def trigger(seeded):  # noqa: F811 - the fixture imported above
    TriggerStore(wiring.table()).put_new(TriggerRecord(
        id=TRID, owner="alice", function_id=FID, next_id=FID, status=202,
        include_result=True, description="again", created_at=now_ns()))


def call(function_id: str, *, body=None, query=None, user: str | None = None) -> dict:
    event = copy.deepcopy(load_event(function_id))
    if body is not None:
        event["body"] = json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if user is not None:
        event["requestContext"]["authorizer"]["lambda"]["user"] = user
    return invoke(function_id, event)


def test_the_sample_create_makes_a_trigger_readable_by_get(trigger):
    answer = call("CreateTriggerFunction")
    assert answer["statusCode"] == 201, answer
    created = json.loads(answer["body"])["id"]
    stored = TriggerStore(wiring.table()).get("alice", created)
    assert (stored.function_id, stored.next_id, stored.status, stored.include_result) == (
        FID, FID, 200, True)


@pytest.mark.parametrize("body", [{"functionId": FID, "nextId": FID, "status": 200},
                                  {"functionId": FID, "nextId": FID, "status": 700,
                                   "includeResult": True}])
def test_a_bad_create_is_400_in_greencloud_shape(seeded, body):  # noqa: F811
    answer = call("CreateTriggerFunction", body=body)
    assert answer["statusCode"] == 400 and "message" in json.loads(answer["body"])


def test_get_list_update_delete_answer_and_another_owner_gets_404(trigger):
    got = call("GetTriggerFunction")
    assert got["statusCode"] == 200
    view = json.loads(got["body"])
    assert (view["functionId"], view["nextId"], view["status"], view["tags"]) == (
        FID, FID, 202, [])
    page = json.loads(call("ListTriggersFunction")["body"])
    assert (page["totalCount"], page["pageSize"], page["results"][0]["id"]) == (1, 10, TRID)
    assert call("ListTriggersFunction", query={"limit": "21"})["statusCode"] == 400
    for function_id in ("GetTriggerFunction", "UpdateTriggerFunction",
                        "DeleteTriggerFunction"):
        assert call(function_id, user="bob")["statusCode"] == 404
    assert call("UpdateTriggerFunction")["statusCode"] == 204
    assert TriggerStore(wiring.table()).get("alice", TRID).status == 500
    assert call("DeleteTriggerFunction")["statusCode"] == 204
    assert call("GetTriggerFunction")["statusCode"] == 404


def test_the_stream_handler_chains_the_result_once(trigger):
    event = load_event("TriggerFireFunction")
    assert invoke("TriggerFireFunction", event) == {"fired": 1}
    assert invoke("TriggerFireFunction", event) == {"fired": 1}  # the same child again
    tasks, _ = wiring.tasks().list_by_function(FID, owner="alice", limit=10, cursor=None,
                                               since_ns=0, status=None)
    children = [t for t in tasks if t.task_guid != TID]
    assert len(children) == 1
    child = wiring.tasks().get(children[0].task_guid, consistent=True)
    assert child.triggered_by == TID
    assert TaskService.from_env().input_of(child)["body"] == {"got": 1}
    answer = call("GetTaskFunction")
    assert json.loads(answer["body"])["triggeredBy"] is None  # the sample task: not chained
