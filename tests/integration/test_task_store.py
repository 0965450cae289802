"""Conditional writes against DynamoDB (moto): every transition is one guarded write."""

from __future__ import annotations

import pytest

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidRequest, InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.models import TaskRecord
from taskfn.stores.tasks import open_partition


def new_task(store, task_id="6560f1a0000000000000aa01", owner="alice", created=1):
    task = TaskRecord(task_guid=task_id, owner=owner, function_id="f", created_at=created,
                      updated_at=created)
    assert store.put_new(task)
    return task


def test_create_twice_is_refused(backend):
    store = wiring.tasks()
    task = new_task(store)
    assert store.put_new(task) is False


def test_start_is_conditional_and_a_repeat_on_the_same_cell_does_nothing(backend):
    store = wiring.tasks()
    task = new_task(store)
    shard = open_partition(task.task_guid)
    assert store.table.get(f"TASK#{task.task_guid}", "TASK")["GSI3PK"] == shard
    first = store.apply(task.task_guid, lifecycle.start("cell-a", 10))
    assert first.changed and first.task["state"] == "Running"
    assert first.task["GSI3PK"] == shard
    again = store.apply(task.task_guid, lifecycle.start("cell-a", 11))
    assert again.changed is False
    assert store.get(task.task_guid).started_at == 10
    with pytest.raises(InvalidStateTransition):
        store.apply(task.task_guid, lifecycle.start("cell-b", 12))


def test_complete_only_from_the_running_cell(backend):
    store = wiring.tasks()
    task = new_task(store)
    store.apply(task.task_guid, lifecycle.start("cell-a", 10))
    with pytest.raises(RunningOnDifferentCell, match="Running on cell cell-a not cell-b"):
        store.apply(task.task_guid, lifecycle.complete("cell-b", 20, failed=False))
    done = store.apply(task.task_guid, lifecycle.complete("cell-a", 20, failed=False,
                                                          extra={"response_status": 200}))
    assert done.task["state"] == "Completed"
    assert "GSI3PK" not in done.task  # off the converger's index once finished
    record = store.get(task.task_guid)
    assert (record.response_status, record.first_completed_at, record.cell_id) == (200, 20, "")
    with pytest.raises(InvalidStateTransition):
        store.apply(task.task_guid, lifecycle.complete("cell-a", 21, failed=False))


def test_transition_on_a_missing_task_is_not_found(backend):
    with pytest.raises(NotFound):
        wiring.tasks().apply("6560f1a0000000000000ffff", lifecycle.start("c", 1))


def test_owner_listing_is_newest_first_and_pages_with_a_cursor(backend):
    store = wiring.tasks()
    for n in range(5):
        new_task(store, f"6560f1a00000000000000b0{n}", created=100 + n)
    new_task(store, "6560f1a00000000000000c00", owner="bob", created=500)
    first, cursor = store.list_by_owner("alice", limit=2, cursor=None)
    assert [t.created_at for t in first] == [104, 103]
    assert cursor
    second, cursor = store.list_by_owner("alice", limit=2, cursor=cursor)
    third, last = store.list_by_owner("alice", limit=2, cursor=cursor)
    assert [t.created_at for t in second + third] == [102, 101, 100]
    assert {t.task_guid for t in first + second + third} == {
        f"6560f1a00000000000000b0{n}" for n in range(5)}
    assert last is None


def test_a_cursor_cannot_jump_to_another_owner(backend):
    store = wiring.tasks()
    for n in range(3):
        new_task(store, f"6560f1a00000000000000d0{n}", owner="bob", created=10 + n)
    _, bobs_cursor = store.list_by_owner("bob", limit=1, cursor=None)
    with pytest.raises(InvalidRequest):
        store.list_by_owner("alice", limit=1, cursor=bobs_cursor)
    with pytest.raises(InvalidRequest):
        store.list_by_owner("alice", limit=1, cursor="not-a-cursor!")


def test_a_greencloud_task_life_writes_only_the_index_entries_it_must(backend):
    """Index entries are billed like writes (bench/write_units.py, DynamoDB's rules, over the
    real stream): the put writes the owner list, function list and open index; the start
    none (the owner list projects nothing it changes); the completion the owner list's
    entry (its status) and the open index's removal."""
    from bench import write_units
    from tests.integration.helpers import StreamReader

    reader = StreamReader()
    reader.records()
    store = wiring.tasks()
    task = TaskRecord(task_guid="6560f1a0000000000000ab01", owner="alice", created_at=1,
                      updated_at=1, function_id="6560f1a0000000000000f001")
    store.put_new(task)
    store.apply(task.task_guid, lifecycle.start("cell-1", 2))
    store.apply(task.task_guid, lifecycle.complete("cell-1", 3, failed=False, result="1"))
    indexes = write_units.table_indexes()
    tasks_records = [r for r in reader.records()
                     if (r["dynamodb"].get("NewImage") or {}).get("SK") == {"S": "TASK"}]
    units = [write_units.record_units(r, indexes) for r in tasks_records]
    assert [sorted(u) for u in units] == [
        ["GSI1", "GSI2", "GSI3", "table"],  # the put
        ["table"],                          # the start
        ["GSI1", "GSI3", "table"],          # the completion: its status, the open index
    ]
