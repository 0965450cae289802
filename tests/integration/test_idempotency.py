"""Idempotency-Key on creates against moto: a retried create gets the first task and runs
nothing twice; the key reused for another request is 422; keys are per caller and live 24
hours; a create whose send to the queue fails still answers its task (convergence sends it)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from taskfn import wiring
from taskfn.errors import Conflict, InvalidRequest, NotFound, ResourceExists, Unprocessable
from taskfn.lifecycle import SECOND_NS
from taskfn.models import now_ns
from taskfn.services.cells import DesiredTask
from taskfn.services.converger import Converger
from taskfn.services.tasks import TaskService
from taskfn.stores.idempotency import KEY_TTL_S, IdempotencyKeys, fingerprint

from .helpers import ALICE, BOB
from .test_cells import cells, queued
from .test_cells import function_with as cell_function
from .test_executor import function_with

CODE = "def handler(event, context):\n    return event['body']\n"


def create(function_id: str, body, key: str | None, caller=ALICE, query=None):
    data = json.dumps(body).encode()
    return TaskService.from_env().create(caller, function_id, body=body, query=query or {},
                                         size=len(data), idempotency_key=key)


def owned_tasks(caller=ALICE) -> list[str]:
    tasks, _ = TaskService.from_env().list(caller, limit=100, cursor=None)
    return [task.task_guid for task in tasks]


def test_a_retry_with_the_same_key_gets_the_first_task_and_queues_nothing(backend):
    function_id = function_with(CODE)
    first = create(function_id, {"n": 1}, "order-42").task_guid
    assert queued() == [first]
    again = create(function_id, {"n": 1}, "order-42").task_guid
    assert again == first
    assert owned_tasks() == [first]
    assert queued() == []  # nothing sent the second time: the function runs once


def test_the_same_key_for_another_request_is_422(backend):
    function_id = function_with(CODE)
    create(function_id, {"n": 1}, "k")
    for body, query in (({"n": 2}, {}), ({"n": 1}, {"q": "1"})):
        with pytest.raises(Unprocessable):
            create(function_id, body, "k", query=query)
    other = function_with(CODE)
    with pytest.raises(Unprocessable):  # another function is another request
        create(other, {"n": 1}, "k")
    assert len(owned_tasks()) == 1


def test_a_refused_request_claims_nothing_and_key_order_is_not_a_difference(backend):
    function_id = function_with(CODE)
    wiring.table().update(f"FUNC#{function_id}", "FUNC", set_values={"paused": True},
                          condition="attribute_exists(PK)")
    with pytest.raises(Conflict):
        create(function_id, {"a": 1, "b": 2}, "fix-me")
    wiring.table().update(f"FUNC#{function_id}", "FUNC", set_values={"paused": False},
                          condition="attribute_exists(PK)")
    first = create(function_id, {"a": 1, "b": 2}, "fix-me").task_guid
    assert create(function_id, {"b": 2, "a": 1}, "fix-me").task_guid == first


def test_keys_are_per_caller(backend):
    alices = function_with(CODE)
    bobs = cell_function(CODE, BOB)
    first = create(alices, {"n": 1}, "shared").task_guid
    assert create(bobs, {"n": 1}, "shared", caller=BOB).task_guid != first


def test_without_a_key_every_create_is_a_task(backend):
    function_id = function_with(CODE)
    assert create(function_id, 1, None).task_guid != create(function_id, 1, None).task_guid


def test_an_expired_key_is_free_again(backend):
    function_id = function_with(CODE)
    first = create(function_id, 1, "k").task_guid
    # The claim as it is 24 hours later, before DynamoDB's TTL has deleted it.
    keys = IdempotencyKeys(wiring.table())
    later = now_ns() // SECOND_NS + KEY_TTL_S + 1
    claim = keys.claim("alice", "greencloud.task", "k", "another request", "t2", later)
    assert claim.first and claim.task_id == "t2"
    assert first != "t2"


def test_a_first_request_that_died_after_its_claim_is_completed_by_the_retry(backend):
    function_id = function_with(CODE)
    # The first request claimed the key, then died before writing its task.
    request = fingerprint(function_id, json.dumps({"body": 1, "query": {}}, sort_keys=True))
    IdempotencyKeys(wiring.table()).claim("alice", "greencloud.task", "k", request,
                                          "6560f1a0eeeeeeeeeeeeeeee", now_ns() // SECOND_NS)
    task = create(function_id, 1, "k")
    assert task.task_guid == "6560f1a0eeeeeeeeeeeeeeee"
    assert wiring.tasks().get(task.task_guid) is not None
    assert queued() == [task.task_guid]


def test_concurrent_retries_make_one_task(backend):
    function_id = function_with(CODE)
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: create(function_id, {"n": 1}, "burst").task_guid,
                           range(16)))
    assert len(ids) == 1
    assert owned_tasks() == list(ids)


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400(backend, key):
    function_id = function_with(CODE)
    with pytest.raises(InvalidRequest):
        create(function_id, 1, key)


def test_a_failed_send_after_the_write_still_answers_the_task(backend, monkeypatch):
    """The task is safe once written: a 500 would invite a retry that makes a second one."""
    function_id = function_with(CODE)
    service = TaskService.from_env()

    def refuse(*_, **__):
        raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessage")

    monkeypatch.setattr(service.queue.client, "send_message", refuse)
    task = service.create(ALICE, function_id, body=1, query={}, size=1)
    assert wiring.tasks().get(task.task_guid) is not None
    monkeypatch.undo()
    converger = Converger.from_env()
    converger.now = lambda: now_ns() + 60 * SECOND_NS  # past the dispatch grace
    assert converger.run().dispatched == 1
    assert queued() == [task.task_guid]


def desired(guid: str, **extra) -> DesiredTask:
    return DesiredTask(task_guid=guid, domain="d", placement_tags=("gpu",), **extra)


def test_a_retried_desire_with_its_key_succeeds_once(backend):
    service = cells()
    first = service.desire(ALICE, desired("g-1"), idempotency_key="d-1")
    again = service.desire(ALICE, desired("g-1"), idempotency_key="d-1")
    assert again.task_guid == first.task_guid == "g-1"
    with pytest.raises(ResourceExists):  # without the key, BBS's answer as ever
        service.desire(ALICE, desired("g-1"))
    with pytest.raises(Unprocessable):
        service.desire(ALICE, desired("g-1", annotation="other"), idempotency_key="d-1")
    with pytest.raises(Unprocessable):
        service.desire(ALICE, desired("g-2"), idempotency_key="d-1")


def deleted(task_id: str) -> None:
    table = wiring.table()
    table.client.delete_item(TableName=table.name,
                             Key={"PK": {"S": f"TASK#{task_id}"}, "SK": {"S": "TASK"}})


def test_a_retry_after_the_task_was_deleted_does_not_run_it_again(backend):
    """The first request wrote its task, which was deleted since: its retry must not write
    (and queue) the same task a second time."""
    function_id = function_with(CODE)
    first = create(function_id, {"n": 1}, "once").task_guid
    assert queued() == [first]
    deleted(first)
    with pytest.raises(Conflict):
        create(function_id, {"n": 1}, "once")
    assert wiring.tasks().get(first) is None
    assert queued() == []


def test_a_retried_desire_after_its_task_was_deleted_desires_nothing(backend):
    service = cells()
    service.desire(ALICE, desired("g-9"), idempotency_key="d-9")
    deleted("g-9")
    with pytest.raises(NotFound):
        service.desire(ALICE, desired("g-9"), idempotency_key="d-9")
    assert wiring.tasks().get("g-9") is None
