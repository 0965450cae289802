"""The Cell API's domain index against moto: Pending work is the head of its domain's
partition (so finished tasks never hide it from a cell), a cursor pages through it, and
convergence deletes Completed Cell API tasks after the completed expiry as BBS does, never
GreenCloud's. Clocks are injected: nothing waits on a real timeout."""

from __future__ import annotations

import pytest

from taskfn import lifecycle, wiring
from taskfn.errors import Forbidden, InvalidRequest
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.services.cells import CellService, DesiredTask
from taskfn.services.converger import Converger
from taskfn.settings import get_settings
from taskfn.stores.table import to_item
from taskfn.stores.tasks import TaskStore

from .helpers import ALICE, open_keys

S = SECOND_NS
CELL = Caller(user="ops", scope=Scope.CELL, node="cell-1", shared=True)  # a shared node's


def cells() -> CellService:
    return CellService(wiring.tasks(), wiring.functions(), wiring.task_queue(), get_settings())


def desire(guid: str, *, domain: str = "d", **extra) -> TaskRecord:
    return cells().desire(ALICE, DesiredTask(task_guid=guid, domain=domain,
                                             placement_tags=("gpu",), **extra))


def pending(domain: str = "d", *, limit: int = 100) -> list[str]:
    """Every page of the domain's Pending tasks, cursor after cursor."""
    found, cursor = [], None
    while True:
        page, cursor = cells().pending(CELL, domain, limit=limit, cursor=cursor)
        found += [task.task_guid for task in page]
        if cursor is None:
            return found


def write_completed(count: int, *, domain: str = "d", legacy: bool = False) -> None:
    """`count` Completed Cell API tasks, older than anything desired after, written as the
    store writes them (BatchWriteItem: a thousand single puts would only be slower), or as
    the store wrote them before Pending work had a key range of its own (`legacy`: keyed by
    creation, and off the open index, so never deleted by convergence)."""
    start = now_ns() - 3600 * S
    items = [TaskStore.item_for(TaskRecord(
        task_guid=f"done-{n:05d}", domain=domain, owner="alice", task_definition={},
        placement_tags=["gpu"], state=State.COMPLETED, created_at=start + n,
        updated_at=start + n, first_completed_at=start + n, result="ok"))
        for n in range(count)]
    if legacy:
        for item in items:
            item["GSI4SK"] = item.pop("GSI3SK")
            del item["GSI3PK"]
    table = wiring.table()
    for first in range(0, len(items), 25):
        chunk = [{"PutRequest": {"Item": to_item(item)}} for item in items[first:first + 25]]
        request = {table.name: chunk}
        while request:
            request = table.client.batch_write_item(RequestItems=request).get(
                "UnprocessedItems") or {}


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["keyed-now", "keyed-before"])
def test_a_thousand_completed_tasks_do_not_hide_a_new_pending_task_from_a_cell(
    backend, legacy
):
    write_completed(1001, legacy=legacy)
    desire("fresh")
    listed = [task.task_guid for task in cells().list(CELL, domain="d")]
    assert len(listed) == get_settings().cell_list_max  # BBS's answer, still bounded
    assert "fresh" in listed
    assert listed[-1] == "fresh"  # oldest first
    assert pending() == ["fresh"]  # the pending range alone: the finished ones are not read


def test_start_takes_a_task_off_the_pending_range_and_going_back_to_pending_returns_it(
    backend,
):
    service = cells()
    for guid in ("t1", "t2", "t3", "t4"):
        desire(guid)
    desire("r", retries=1)
    assert pending() == ["t1", "t2", "t3", "t4", "r"]
    assert service.start("t1", "cell-1")
    service.cancel(ALICE, "t3")  # finished without starting
    service.fail("t4", "no room")
    assert pending() == ["t2", "r"]
    service.reject("t1", "out of disk")  # Running → Pending: last in the queue now
    assert service.start("r", "cell-1")
    service.complete("r", "cell-1", failed=True, failure_reason="boom", result="")  # a retry
    assert pending(limit=1) == ["t2", "t1", "r"]
    assert {t.task_guid for t in service.list(CELL, domain="d")} == {
        "t1", "t2", "t3", "t4", "r"}  # list.r3 still answers every task of the domain
    assert [t.task_guid for t in service.list(CELL, domain="d")] == [
        "t1", "t2", "t3", "t4", "r"]  # oldest first


def test_a_pending_cursor_cannot_leave_the_pending_range(backend):
    desire("waiting")
    desire("taken")
    cells().start("taken", "cell-1")
    everything = wiring.table().query("GSI4", "DOMAIN#d", limit=1, newest_first=True)
    assert [item["task_guid"] for item in everything.items] == ["taken"]
    with pytest.raises(InvalidRequest, match="invalid cursor"):
        cells().pending(CELL, "d", limit=10, cursor=everything.cursor)


def test_only_cells_read_a_domain_s_pending_work(backend):
    with pytest.raises(Forbidden):
        cells().pending(ALICE, "d", limit=10)


def test_a_greencloud_task_is_on_no_domain_index_whatever_its_moves(backend):
    store = wiring.tasks()
    store.put_new(TaskRecord(task_guid="gc", owner="alice", created_at=1, updated_at=1,
                             function_id="f"))
    store.apply("gc", lifecycle.start("executor-1", 2))
    store.apply("gc", lifecycle.retry({}, "boom", 3, cell_id="executor-1"))
    item = wiring.table().get("TASK#gc", "TASK")
    assert "GSI4PK" not in item
    assert cells().list(CELL, domain="taskfn") == []


# --- convergence deletes Completed Cell API tasks after the completed expiry --------------


def converger(at: int) -> Converger:
    return Converger(wiring.tasks(), wiring.task_queue(), get_settings(), now=lambda: at,
                     callbacks=wiring.callback_queue())


def finish_greencloud(guid: str) -> None:
    store = wiring.tasks()
    at = now_ns()
    store.put_new(TaskRecord(task_guid=guid, owner="alice", created_at=at, updated_at=at,
                             function_id="f"))
    store.apply(guid, lifecycle.start("executor-1", at))
    store.apply(guid, lifecycle.complete("executor-1", at, failed=False, result="42"))


def test_completed_cell_api_tasks_without_a_callback_are_deleted_after_the_expiry(backend):
    service = cells()
    desire("cell-task")
    assert service.start("cell-task", "cell-1")
    service.complete("cell-task", "cell-1", failed=False, failure_reason="", result="ok")
    finish_greencloud("greencloud")
    assert open_keys() == ["TASK#cell-task"]  # convergence still has work for it
    completed = wiring.tasks().get("cell-task").first_completed_at
    expiry = int(get_settings().completed_expiry_s) * S

    report = converger(completed + expiry).run()  # "longer than": not yet
    assert (report.open, report.deleted, report.kicked) == (1, 0, 0)
    report = converger(completed + expiry + S).run()
    assert (report.deleted, report.lost_races) == (1, 0)
    assert wiring.tasks().get("cell-task") is None
    assert service.list(CELL, domain="d") == []
    assert open_keys() == []
    # GreenCloud's task is never deleted by convergence: its result stays readable.
    far = converger(now_ns() + 10**6 * S).run()
    assert far.deleted == 0
    assert wiring.tasks().get("greencloud").result == "42"


def test_a_stalled_resolving_cell_api_task_without_a_callback_is_demoted_then_deleted(backend):
    service = cells()
    desire("t")
    service.fail("t", "broke")
    service.resolving(ALICE, "t")
    resolved = wiring.tasks().get("t")
    report = converger(resolved.updated_at + 31 * S).run()
    assert (report.demoted, report.kicked, report.kick_failures) == (1, 0, 0)
    assert wiring.tasks().get("t").state == "Completed"
    report = converger(resolved.first_completed_at + 121 * S).run()
    assert report.deleted == 1 and wiring.tasks().get("t") is None


def test_a_completion_keeps_or_leaves_the_open_index_by_what_the_task_is_not_the_hint(
    backend,
):
    store = wiring.tasks()
    desire("cell-task")
    store.put_new(TaskRecord(task_guid="gc", owner="alice", created_at=1, updated_at=1))
    # Wrong hints both ways: the first write's condition fails, the second is right.
    store.apply("cell-task", lifecycle.fail("x", 5), has_callback=False)
    store.apply("gc", lifecycle.fail("x", 5), desired=True)
    assert open_keys() == ["TASK#cell-task"]
    assert wiring.tasks().get("gc").state == wiring.tasks().get("cell-task").state == "Completed"
