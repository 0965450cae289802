"""The converger against moto: each of its three steps as conditional writes, and the faults
it exists for (a task written but never queued, an executor that died mid-task). Clocks are
injected: nothing sleeps through a real timeout."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from taskfn import aws, lifecycle, wiring
from taskfn.models import TaskRecord, now_ns
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.python import failure, run_python
from taskfn.services.converger import SECOND_NS, Converger
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.settings import get_settings
from taskfn.stores.queue import decode

from .helpers import ALICE, open_keys

S = SECOND_NS
T0 = now_ns()


def converger(at: int, **settings) -> Converger:
    return Converger(wiring.tasks(), wiring.task_queue(),
                     get_settings().model_copy(update=settings), now=lambda: at)


def put(guid: str, *, created: int = T0, tags: tuple[str, ...] = (), **fields) -> TaskRecord:
    task = TaskRecord(task_guid=guid, owner="alice", created_at=created, updated_at=created,
                      placement_tags=list(tags), **fields)
    assert wiring.tasks().put_new(task)
    return task


def queued() -> list[str]:
    answer = aws.client("sqs").receive_message(
        QueueUrl=get_settings().task_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return sorted(decode(message["Body"]) for message in answer.get("Messages", []))


def state(guid: str) -> TaskRecord:
    return wiring.tasks().get(guid)


def test_old_pending_tasks_expire_and_leave_the_open_index(backend):
    put("old", created=T0 - 1801 * S)
    put("young", created=T0 - 10 * S)
    report = converger(T0).run()
    assert (report.open, report.expired, report.dispatched) == (2, 1, 0)
    old = state("old")
    assert (old.state, old.failed, old.failure_reason) == (
        "Completed", True, "not started within time limit")
    assert open_keys() == ["TASK#young"]
    assert state("young").state == "Pending"
    assert converger(T0).run().open == 1


def test_a_pending_task_past_the_grace_is_dispatched_unless_tagged(backend):
    put("fresh", created=T0 - 5 * S)
    put("waiting", created=T0 - 40 * S)
    put("tagged", created=T0 - 40 * S, tags=("gpu",))
    report = converger(T0).run()
    assert (report.dispatched, report.expired, report.cell_lost) == (1, 0, 0)
    assert queued() == ["waiting"]
    assert {g: state(g).state for g in ("fresh", "waiting", "tagged")} == {
        "fresh": "Pending", "waiting": "Pending", "tagged": "Pending"}


def test_a_running_task_whose_cell_went_silent_fails(backend):
    put("t", created=T0)
    wiring.tasks().apply("t", lifecycle.start("executor-dead", T0))
    assert converger(T0 + 90 * S).run().cell_lost == 0  # not yet: "longer than"
    report = converger(T0 + 91 * S).run()
    assert report.cell_lost == 1
    task = state("t")
    assert (task.state, task.failed, task.failure_reason, task.cell_id) == (
        "Completed", True, "cell disappeared before completion", "")
    assert open_keys() == []


def test_a_task_that_just_heartbeated_is_not_failed(backend):
    put("t", created=T0)
    tasks = wiring.tasks()
    tasks.apply("t", lifecycle.start("executor-a", T0))
    late = converger(T0 + 200 * S)
    # The converger read the task stale; the cell heartbeats before the failing write lands.
    real_apply = tasks.apply

    def heartbeat_first(task_id, transition, **hints):
        real_apply(task_id, lifecycle.heartbeat("executor-a", T0 + 199 * S))
        return real_apply(task_id, transition, **hints)

    late.tasks.apply = heartbeat_first
    report = late.run()
    assert (report.cell_lost, report.lost_races) == (0, 1)
    assert state("t").state == "Running"
    # And read fresh, a heartbeated task is not even a candidate.
    assert converger(T0 + 200 * S).run().cell_lost == 0


def test_a_task_started_meanwhile_is_not_expired(backend):
    put("t", created=T0 - 2000 * S)
    tasks = wiring.tasks()
    run = converger(T0)
    real_apply = tasks.apply

    def start_first(task_id, transition, **hints):
        real_apply(task_id, lifecycle.start("cell-a", T0))
        return real_apply(task_id, transition, **hints)

    run.tasks.apply = start_first
    report = run.run()
    assert (report.expired, report.lost_races) == (0, 1)
    assert state("t").state == "Running"


def function_with(source: str) -> FunctionService:
    return FunctionService.from_env().create(ALICE, NewFunction(name="f", source=source))


def test_a_task_written_but_never_queued_is_sent_and_run(backend, tmp_path: Path):
    """The process died between writing the task and sending it to the queue."""
    function = function_with("def handler(event, context):\n    return {'ran': True}\n")
    put("lost", created=T0, function_id=function.id, build_id=function.build_id,
        code_key=function.code_key, input={"body": None, "query": {}})
    assert queued() == []
    assert converger(T0 + 31 * S).run().dispatched == 1
    (message,) = queued()
    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        CodeCache(tmp_path / "code"), "cell-x", get_settings(), run_python)
    assert executor.run(message) == "succeeded"
    task = state("lost")
    assert task.state == "Completed" and not task.failed
    assert json.loads(task.response_body) == {"ran": True}
    assert converger(T0 + 100 * S).run().open == 0


def test_an_executor_that_died_mid_task_is_failed(backend):
    """Started on a cell that then vanished: no heartbeat, so the converger fails it and a
    late completion from that cell is refused."""
    put("t", created=T0)
    wiring.tasks().apply("t", lifecycle.start("executor-gone", T0 + 1 * S))
    assert converger(T0 + 60 * S).run().cell_lost == 0
    assert converger(T0 + 200 * S).run().cell_lost == 1
    assert state("t").failure_reason == "cell disappeared before completion"
    try:
        wiring.tasks().apply("t", lifecycle.complete("executor-gone", T0, failed=False))
    except Exception as error:  # the cell is no longer the task's
        assert type(error).__name__ in {"InvalidStateTransition", "RunningOnDifferentCell"}
    else:
        raise AssertionError("a completion from the lost cell was accepted")


def test_an_external_cell_that_heartbeats_keeps_its_task_and_a_silent_one_loses_it(backend):
    """External cells heartbeat through the Cell API's heartbeat route, so their tasks are
    judged like the built-in executor's: silence past the cell timeout fails them."""
    tasks = wiring.tasks()
    for guid in ("beating", "silent"):
        put(guid, created=T0, tags=("gpu",))
        tasks.apply(guid, lifecycle.start(f"gpu-cell-{guid}", T0))
    tasks.apply("beating", lifecycle.heartbeat("gpu-cell-beating", T0 + 60 * S))
    report = converger(T0 + 120 * S).run()
    assert report.cell_lost == 1
    assert state("beating").state == "Running"
    silent = state("silent")
    assert (silent.state, silent.failure_reason) == (
        "Completed", "cell disappeared before completion")


class NoCode:
    """A code cache that has nothing to unpack: the stub runner needs no code."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def use(self, build_id, fetch):
        yield self.path


def test_the_executor_heartbeats_a_long_task(backend, tmp_path: Path):
    """Interval shortened to 0.1 s: a 0.5 s run writes updated_at while it runs."""
    put("t", created=T0, code_key="k", build_id="b")
    seen: dict[str, int] = {}

    def slow_runner(*args, **kwargs):
        seen["started"] = state("t").updated_at
        time.sleep(0.5)
        seen["later"] = state("t").updated_at
        return failure(500, "Stub", "stub runner", reason="stub runner")

    settings = get_settings().model_copy(update={"cell_heartbeat_s": 0.1})
    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        NoCode(tmp_path), "cell-h", settings, slow_runner)
    assert executor.run("t") == "failed"
    assert seen["later"] > seen["started"]
    assert state("t").state == "Completed"


@pytest.mark.slow
def test_a_pass_is_bounded_and_reads_oldest_first(backend):
    for n in range(5):
        put(f"t{n}", created=T0 - (2000 - n) * S)
    report = converger(T0, converger_max_tasks=3).run()
    assert (report.open, report.expired, report.truncated) == (3, 3, True)
    assert open_keys() == ["TASK#t3", "TASK#t4"]
    report = converger(T0, converger_max_tasks=3).run()
    assert (report.open, report.expired, report.truncated) == (2, 2, False)


def test_a_lost_task_with_retries_left_is_pending_again_and_then_dispatched(backend):
    put("retry-me", retries=1)
    wiring.tasks().apply("retry-me", lifecycle.start("executor-gone", T0))
    report = converger(T0 + 91 * S).run()
    assert (report.retried, report.cell_lost) == (1, 0)
    again = state("retry-me")
    assert (again.state, again.retried, again.cell_id) == ("Pending", 1, "")
    assert again.attempts[0]["failure_reason"] == lifecycle.CELL_LOST_REASON
    assert again.attempts[0]["cell_id"] == "executor-gone"
    assert again.retry_at == T0 + 93 * S  # 2^1 s after the pass
    # While it backs off, a later pass leaves it alone; after, it dispatches it again.
    assert converger(T0 + 92 * S, dispatch_grace_s=0).run().dispatched == 0
    assert converger(T0 + 94 * S, dispatch_grace_s=0).run().dispatched == 1

    wiring.tasks().apply("retry-me", lifecycle.start("executor-gone-too", T0 + 95 * S))
    final = converger(T0 + 200 * S).run()
    assert (final.retried, final.cell_lost) == (0, 1)
    done = state("retry-me")
    assert (done.state, done.failed, len(done.attempts)) == ("Completed", True, 1)
