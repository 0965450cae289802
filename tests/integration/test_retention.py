"""One retention for task records and their outputs (issue: S3 expired outputs while records
stayed, and /result then answered 500): records get an expires_at from the retention setting
when they are created, a record past it is gone for every reader (DynamoDB's TTL deletes it
lazily), and an output S3 already removed is a 404 "expired", never a fault."""

from __future__ import annotations

import pytest

from taskfn import wiring
from taskfn.errors import NotFound
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import DAY_S, Caller, Scope, TaskRecord, now_ns
from taskfn.services.cells import CellService, DesiredTask
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.blobs import task_key

from .helpers import ALICE, BOB

CELL = Caller(user="ops", scope=Scope.CELL, node="cell-1", shared=True)  # a shared node's
GUID = "6560f1a0000000000000ee01"


def finished(*, expires_at: int = 0, **fields) -> TaskRecord:
    at = now_ns()
    task = TaskRecord(task_guid=GUID, owner="alice", function_id="f", state=State.COMPLETED,
                      created_at=at, updated_at=at, first_completed_at=at,
                      response_status=200, expires_at=expires_at, **fields)
    assert wiring.tasks().put_new(task)
    return task


def test_tasks_expire_after_the_retention_from_their_creation(backend):
    days = get_settings().task_retention_days
    function = FunctionService.from_env().create(ALICE, NewFunction(
        name="f", source="def handler(event, context):\n    return 1\n"))
    created = TaskService.from_env().create(ALICE, function.id, body=None, query={}, size=0)
    stored = wiring.tasks().get(created.task_guid)
    assert stored.expires_at == created.created_at // SECOND_NS + days * DAY_S
    desired = CellService.from_env().desire(ALICE, DesiredTask(
        task_guid="cell-task", domain="d", placement_tags=("gpu",)))
    assert wiring.tasks().get("cell-task").expires_at == (
        desired.created_at // SECOND_NS + days * DAY_S)
    # The attribute the table's TTL reads (template.yaml TimeToLiveSpecification).
    assert isinstance(wiring.table().get("TASK#cell-task", "TASK")["expires_at"], int)


def test_a_record_past_its_expiry_is_gone_for_every_reader(backend):
    finished(expires_at=now_ns() // SECOND_NS - 1, response_body="hi")
    tasks = TaskService.from_env()
    for read in (tasks.get, tasks.result, tasks.logs):
        with pytest.raises(NotFound, match="task expired"):
            read(ALICE, GUID)
    with pytest.raises(NotFound, match="task not found"):  # another's: nothing leaks
        tasks.get(BOB, GUID)
    with pytest.raises(NotFound, match="task expired"):
        CellService.from_env().get(CELL, GUID)


def test_a_record_not_yet_expired_and_one_written_before_retention_read_as_ever(backend):
    finished(expires_at=now_ns() // SECOND_NS + 60, response_body="hi")
    assert TaskService.from_env().result(ALICE, GUID).body == b"hi"
    wiring.tasks().table.update(f"TASK#{GUID}", "TASK", set_values={"expires_at": None},
                                condition="attribute_exists(PK)")
    assert TaskService.from_env().get(ALICE, GUID).expires_at == 0  # never expires by itself


def test_an_output_s3_already_removed_is_expired_not_a_fault(backend):
    blobs = wiring.blobs()
    blobs.put(task_key(GUID, "a/stderr.txt"), b"kept")
    finished(response_key=task_key(GUID, "a/result"), stdout_key=task_key(GUID, "a/stdout.txt"),
             stderr_key=task_key(GUID, "a/stderr.txt"))  # result and stdout: removed
    tasks = TaskService.from_env()
    with pytest.raises(NotFound, match="task output expired"):
        tasks.result(ALICE, GUID)
    with pytest.raises(NotFound, match="task output expired"):
        tasks.logs(ALICE, GUID)
    blobs.put(task_key(GUID, "a/result"), b"body")
    blobs.put(task_key(GUID, "a/stdout.txt"), b"out")
    assert tasks.result(ALICE, GUID).body == b"body"
    assert tasks.logs(ALICE, GUID).stderr == "kept"


def test_the_owner_s_list_leaves_out_tasks_past_the_retention(backend):
    days = get_settings().task_retention_days
    old = now_ns() - (days * DAY_S + 60) * SECOND_NS
    for guid, created in (("6560f1a0000000000000ee02", old), ("6560f1a0000000000000ee03",
                                                               now_ns())):
        assert wiring.tasks().put_new(TaskRecord(
            task_guid=guid, owner="alice", function_id="f", created_at=created,
            updated_at=created, expires_at=created // SECOND_NS + days * DAY_S))
    listed, _ = TaskService.from_env().list(ALICE, limit=10, cursor=None)
    assert [task.task_guid for task in listed] == ["6560f1a0000000000000ee03"]
