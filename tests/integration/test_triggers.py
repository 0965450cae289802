"""Triggers against moto: CRUD, bounds, another owner's functions as 404, the list's paging,
and firing from the table's stream (through TriggerFireFunction's filter): on the status only,
with and without the result, once per finished task, and A → A stopping at the depth limit."""

from __future__ import annotations

import pytest

from taskfn import ids, lifecycle, wiring
from taskfn.adapters import greencloud, greencloud_triggers
from taskfn.errors import InvalidRequest, NotFound
from taskfn.models import FunctionRecord, TaskRecord, now_ns
from taskfn.services.tags import TagService
from taskfn.services.tasks import TaskService
from taskfn.services.triggers import TriggerService
from taskfn.stores.triggers import TriggerStore
from tests.integration.helpers import ALICE, BOB, StreamReader


def function(owner: str = "alice", *, paused: bool = False) -> str:
    record = FunctionRecord(id=ids.new_id(), owner=owner, name="f", lang="http",
                            url="http://fn.example.com/", created_at=now_ns(), paused=paused)
    assert wiring.functions().put_new(record)
    return record.id


def service(max_depth: int = 10, max_chain_tasks: int = 100) -> TriggerService:
    return TriggerService(TriggerStore(wiring.table()), wiring.functions(), max_depth=max_depth,
                          max_chain_tasks=max_chain_tasks)


def new(service_: TriggerService, caller=ALICE, **body) -> str:
    return service_.create(caller, greencloud_triggers.parse_new_trigger(body)).id


def run(function_id: str, *, status: int, body: str = "", trigger_depth: int = 0,
        task_id: str | None = None) -> TaskRecord:
    """A task of the function, run to Completed with an HTTP response (as the executor)."""
    tasks = TaskService.from_env()
    task = tasks.create(ALICE, function_id, body=None, query={}, size=0, task_id=task_id,
                        trigger_depth=trigger_depth)
    return finish(task.task_guid, status=status, body=body)


def finish(task_id: str, *, status: int, body: str = "") -> TaskRecord:
    at = now_ns()
    wiring.tasks().apply(task_id, lifecycle.start("cell-a", at))
    wiring.tasks().apply(task_id, lifecycle.complete("cell-a", at + 1, failed=False, extra={
        "response_status": status, "response_body": body,
        "response_headers": {"Content-Type": "application/json"}}))
    return wiring.tasks().get(task_id, consistent=True)


@pytest.fixture
def stream(backend):
    return StreamReader()


def fire(stream: StreamReader, service_: TriggerService, *, twice: bool = False) -> list[str]:
    records = stream.records("TriggerFireFunction")
    fired = service_.fire(records)
    if twice:
        fired += service_.fire(records)
    return fired


def test_a_trigger_is_created_read_listed_changed_and_deleted(backend):
    triggers = service()
    a, b = function(), function()
    tag = TagService.from_env().create(ALICE, greencloud.parse_new_tag({"name": "chain"}))
    trigger_id = new(triggers, functionId=a, nextId=b, status=200, includeResult=True,
                     tag=[tag.id], description="then b")
    detail = triggers.detail(ALICE, trigger_id)
    view = greencloud_triggers.trigger_view(detail.trigger, detail.tags)
    assert view["createdAt"].endswith("Z")
    assert {k: v for k, v in view.items() if k != "createdAt"} == {
        "functionId": a, "nextId": b, "status": 200, "includeResult": True,
        "description": "then b", "stoppedChain": None,
        "tags": [{"id": tag.id, "name": "chain", "color": tag.color}]}
    triggers.update(ALICE, trigger_id, greencloud_triggers.parse_trigger_patch(
        {"status": 500, "includeResult": False, "tag": []}))
    changed = triggers.get(ALICE, trigger_id)
    assert (changed.status, changed.include_result, changed.tags) == (500, False, [])
    triggers.delete(ALICE, trigger_id)
    with pytest.raises(NotFound):
        triggers.get(ALICE, trigger_id)
    with pytest.raises(NotFound):
        triggers.delete(ALICE, trigger_id)


@pytest.mark.parametrize("body", [
    {"nextId": "x", "status": 200, "includeResult": True},
    {"functionId": "x", "status": 200, "includeResult": True},
    {"functionId": "x", "nextId": "y", "status": 99, "includeResult": True},
    {"functionId": "x", "nextId": "y", "status": 600, "includeResult": True},
    {"functionId": "x", "nextId": "y", "status": "200", "includeResult": True},
    {"functionId": "x", "nextId": "y", "status": 200},
    {"functionId": "x", "nextId": "y", "status": 200, "includeResult": "yes"},
    {"functionId": "x", "nextId": "y", "status": 200, "includeResult": True,
     "description": "d" * 257},
])
def test_bad_bodies_are_400(body):
    with pytest.raises(InvalidRequest):
        greencloud_triggers.parse_new_trigger(body)


def test_another_owners_function_as_either_end_is_404(backend):
    triggers = service()
    mine, theirs = function(), function("bob")
    for ends in ((theirs, mine), (mine, theirs)):
        with pytest.raises(NotFound):
            new(triggers, functionId=ends[0], nextId=ends[1], status=200, includeResult=False)
    trigger_id = new(triggers, functionId=mine, nextId=mine, status=200, includeResult=False)
    with pytest.raises(NotFound):
        triggers.get(BOB, trigger_id)
    with pytest.raises(NotFound):
        triggers.update(BOB, trigger_id, {"status": 201})
    with pytest.raises(NotFound):
        triggers.delete(BOB, trigger_id)
    assert triggers.get(ALICE, trigger_id).status == 200


def test_an_unknown_tag_is_400(backend):
    a = function()
    with pytest.raises(InvalidRequest):
        new(service(), functionId=a, nextId=a, status=200, includeResult=False,
            tag=["6560f1a0aaaaaaaaaaaaaaaa"])


def test_the_list_pages_with_limit_3_to_20_and_filters_by_function(backend):
    triggers = service()
    a, b = function(), function()
    made = [new(triggers, functionId=a if i % 2 else b, nextId=b, status=200,
                includeResult=False) for i in range(7)]
    new(triggers, BOB, functionId=function("bob"), nextId=function("bob"), status=200,
        includeResult=False)
    page = triggers.list(ALICE, **greencloud_triggers.parse_trigger_list({"page": "3",
                                                                          "limit": "3"}))
    assert page.total == 7 and [t.id for t in page.triggers] == made[6:]
    view = greencloud.page_view([greencloud_triggers.trigger_list_item(t, page.tags)
                                 for t in page.triggers], total=page.total, limit=3)
    assert (view["pageCount"], view["pageSize"], view["totalCount"]) == (3, 3, 7)
    assert set(view["results"][0]) == {"id", "functionId", "nextId", "tags", "status",
                                       "includeResult", "createdAt"}
    only_a = triggers.list(ALICE, **greencloud_triggers.parse_trigger_list({"functionId": a}))
    assert [t.id for t in only_a.triggers] == made[1::2]
    assert greencloud_triggers.parse_trigger_list({})["limit"] == 10
    for limit in ("2", "21", "999", "x"):
        with pytest.raises(InvalidRequest):
            greencloud_triggers.parse_trigger_list({"limit": limit})
    with pytest.raises(InvalidRequest):
        greencloud_triggers.parse_trigger_list({"page": "0"})


def test_a_trigger_fires_on_its_status_only_with_the_result(stream):
    triggers = service()
    a, b, c = function(), function(), function()
    new(triggers, functionId=a, nextId=b, status=200, includeResult=True)
    new(triggers, functionId=a, nextId=c, status=500, includeResult=True)
    parent = run(a, status=200, body='{"sum": 3}')
    (child_id,) = fire(stream, triggers)
    child = wiring.tasks().get(child_id, consistent=True)
    assert (child.function_id, child.triggered_by, child.trigger_depth) == (b, parent.task_guid,
                                                                            1)
    assert TaskService.from_env().input_of(child)["body"] == {"sum": 3}
    assert greencloud.task_view(child)["triggeredBy"] == parent.task_guid


def test_a_batch_reads_each_function_s_triggers_once(stream, aws_calls):
    """Every finished task of a function reaches the firing path; a batch of many tasks of
    one function queries its triggers once, and each task still fires its own child."""
    triggers = service()
    a, b = function(), function()
    new(triggers, functionId=a, nextId=b, status=200, includeResult=False)
    parents = [run(a, status=200) for _ in range(4)]
    records = stream.records("TriggerFireFunction")
    aws_calls.clear()
    fired = triggers.fire(records)
    assert len(fired) == len(parents) == len(set(fired))
    queries = [params for op, params in aws_calls if op == "Query"]
    assert len(queries) == 1


def test_without_include_result_the_next_task_has_no_body(stream):
    triggers = service()
    a, b = function(), function()
    new(triggers, functionId=a, nextId=b, status=201, includeResult=False)
    run(a, status=201, body='{"secret": 1}')
    (child_id,) = fire(stream, triggers)
    child = wiring.tasks().get(child_id, consistent=True)
    assert TaskService.from_env().input_of(child)["body"] is None


def test_a_stream_record_delivered_twice_makes_one_child(stream):
    triggers = service()
    a, b = function(), function()
    new(triggers, functionId=a, nextId=b, status=200, includeResult=False)
    run(a, status=200)
    fired = fire(stream, triggers, twice=True)
    assert len(fired) == 2 and len(set(fired)) == 1
    tasks, _ = wiring.tasks().list_by_function(b, owner="alice", limit=10, cursor=None,
                                               since_ns=0, status=None)
    assert [t.task_guid for t in tasks] == fired[:1]


def test_a_paused_next_function_is_skipped_without_failing(stream):
    triggers = service()
    a, b = function(), function()
    new(triggers, functionId=a, nextId=b, status=200, includeResult=False)
    wiring.table().update(f"FUNC#{b}", "FUNC", set_values={"paused": True}, condition=None)
    run(a, status=200)
    assert fire(stream, triggers) == []


def test_a_loop_stops_at_the_depth_limit_with_a_visible_reason(stream):
    triggers = service(max_depth=3)
    a = function()
    trigger_id = new(triggers, functionId=a, nextId=a, status=200, includeResult=False)
    task = run(a, status=200)
    chain = [task.task_guid]
    while True:
        fired = fire(stream, triggers)
        if not fired:
            break
        (child_id,) = fired
        chain.append(child_id)
        finish(child_id, status=200)
    assert len(chain) == 4  # the first task and three chained ones
    assert wiring.tasks().get(chain[-1], consistent=True).trigger_depth == 3
    view = greencloud_triggers.trigger_view(triggers.get(ALICE, trigger_id), {})
    assert view["stoppedChain"]["taskId"] == chain[-1]
    assert view["stoppedChain"]["reason"] == "trigger chain depth limit 3 reached"
