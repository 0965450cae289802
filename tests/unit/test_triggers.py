"""Trigger matching rules: which stream records fire, which tasks a trigger follows, and the
child id being the same for every delivery."""

from __future__ import annotations

from taskfn.models import TaskRecord
from taskfn.services.triggers import child_task_id, matches, newly_finished
from taskfn.stores.table import to_item
from taskfn.stores.triggers import TriggerRecord

TRIGGER = TriggerRecord(id="6560f1a0eeeeeeeeeeeeeeee", owner="alice", function_id="fa",
                        next_id="fb", status=200, include_result=True, created_at=1)


def task(**fields) -> TaskRecord:
    values = {"task_guid": "t1", "owner": "alice", "function_id": "fa", "created_at": 1,
              "updated_at": 2, "state": "Completed", "response_status": 200,
              "first_completed_at": 3_000_000_000, **fields}
    return TaskRecord(**values)


def record(new: dict, old: dict) -> dict:
    return {"eventName": "MODIFY", "dynamodb": {"NewImage": to_item(new),
                                                "OldImage": to_item(old)}}


def test_a_trigger_follows_a_finished_task_of_its_function_owner_and_status_only():
    assert matches(TRIGGER, task())
    assert not matches(TRIGGER, task(response_status=201))
    assert not matches(TRIGGER, task(function_id="other"))
    assert not matches(TRIGGER, task(owner="bob"))
    assert not matches(TRIGGER, task(state="Running"))


def test_only_tasks_entering_completed_with_a_response_fire():
    done = {"PK": "TASK#t1", "SK": "TASK", "task_guid": "t1", "owner": "alice",
            "function_id": "fa", "created_at": 1, "updated_at": 2, "state": "Completed",
            "response_status": 200}
    running = {**done, "state": "Running", "response_status": 0}
    assert [t.task_guid for t in newly_finished([record(done, running)] * 2)] == ["t1"]
    assert newly_finished([record(done, done)]) == []  # already finished: a later change
    assert newly_finished([record({**done, "response_status": 0}, running)]) == []
    assert newly_finished([record({**done, "function_id": ""}, running)]) == []
    assert newly_finished([record({**done, "SK": "FUNC"}, running)]) == []


def test_the_child_id_is_one_per_task_and_trigger_and_a_well_formed_id():
    first = child_task_id(task(), TRIGGER.id)
    assert first == child_task_id(task(), TRIGGER.id)
    assert first != child_task_id(task(task_guid="t2"), TRIGGER.id)
    assert first != child_task_id(task(), "6560f1a0ffffffffffffffff")
    assert len(first) == 24 and int(first, 16) >= 0
