"""Paused functions against moto with real child processes: a task queued before the pause is
held, not run, and runs once the function is resumed; the executor and a resume racing each
other never leave a task waiting; holds are off the open index, so convergence leaves them."""

from __future__ import annotations

import json

import boto3

from taskfn import lifecycle, wiring
from taskfn.models import now_ns
from taskfn.services.converger import Converger
from taskfn.services.holds import HoldService
from taskfn.stores.holds import HoldMarkers
from taskfn.stores.tasks import open_partition

from .helpers import open_keys
from .test_executor import executor, function_with, new_task

CODE = "def handler(event, context):\n    return {'ran': True}\n"


def set_paused(function_id: str, paused: bool) -> None:
    wiring.table().update(f"FUNC#{function_id}", "FUNC", set_values={"paused": paused},
                          condition="attribute_exists(PK)")


def queued(backend) -> list[str]:
    """Task ids sent to the task queue (and not yet received), in any order."""
    sqs = boto3.client("sqs")
    url = backend.env["TASK_QUEUE_URL"]
    ids = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        messages = answer.get("Messages", [])
        if not messages:
            return ids
        ids += [json.loads(m["Body"])["taskId"] for m in messages]


def holds() -> HoldService:
    return HoldService.from_env()


def test_a_task_queued_before_the_pause_waits_and_runs_after_the_resume(backend, tmp_path):
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    queued(backend)  # the create's own message, delivered now
    set_paused(function_id, True)
    cell = executor(tmp_path, "cell-a")
    cell.holds = holds()
    assert cell.run(task_id) == "skipped"
    held = wiring.tasks().get(task_id, consistent=True)
    assert held.state is lifecycle.State.PENDING and held.held_at > 0 and held.cell_id == ""
    assert f"TASK#{task_id}" not in open_keys()  # convergence does not see it
    assert list(HoldMarkers(wiring.table()).held(function_id)) == [task_id]
    # Convergence, however late, neither expires nor dispatches a held task.
    converger = Converger.from_env()
    converger.now = lambda: now_ns() + 10**13
    converger.run()
    assert wiring.tasks().get(task_id, consistent=True).state is lifecycle.State.PENDING
    assert queued(backend) == []

    set_paused(function_id, False)
    assert holds().release_function(function_id) == 1
    released = wiring.tasks().get(task_id, consistent=True)
    assert released.held_at == 0 and released.retry_at > 0
    assert f"TASK#{task_id}" in open_keys()
    assert queued(backend) == [task_id]
    assert list(HoldMarkers(wiring.table()).held(function_id)) == []
    assert cell.run(task_id) == "succeeded"
    assert json.loads(wiring.tasks().get(task_id).response_body) == {"ran": True}


def test_a_resume_between_the_check_and_the_hold_is_seen_by_the_executor(backend, tmp_path):
    """The executor found the function paused just before the resume's write: its
    consistent read after the hold sees the resume, and it releases the task itself."""
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    queued(backend)
    set_paused(function_id, True)
    racing = holds()
    real_hold = racing.tasks.hold

    def hold_then_resume(*args, **kwargs):
        outcome = real_hold(*args, **kwargs)
        set_paused(function_id, False)  # the resume's write lands right after the hold
        return outcome

    racing.tasks = type("Tasks", (), {"hold": staticmethod(hold_then_resume),
                                       "release": racing.tasks.release})()
    cell = executor(tmp_path, "cell-a")
    cell.holds = racing
    assert cell.run(task_id) == "skipped"
    task = wiring.tasks().get(task_id, consistent=True)
    assert task.state is lifecycle.State.PENDING and task.held_at == 0
    assert queued(backend) == [task_id]
    assert list(HoldMarkers(wiring.table()).held(function_id)) == []
    fresh = executor(tmp_path, "cell-b")
    fresh.holds = holds()
    assert fresh.run(task_id) == "succeeded"


def test_a_release_sends_a_task_once_whoever_releases_it(backend, tmp_path):
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    queued(backend)
    set_paused(function_id, True)
    cell = executor(tmp_path, "cell-a")
    cell.holds = holds()
    cell.run(task_id)
    set_paused(function_id, False)
    service = holds()
    assert service.release(function_id, task_id) is True
    assert service.release(function_id, task_id) is False  # the second finds it not held
    assert holds().release_function(function_id) == 0
    assert queued(backend) == [task_id]


def test_a_stale_pause_is_checked_before_a_hold(backend, tmp_path):
    """An executor that read "paused" a moment before the resume runs the task."""
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    stale = holds()
    stale._seen[function_id] = (float("inf"), True)  # read as paused, never read again
    cell = executor(tmp_path, "cell-a")
    cell.holds = stale
    assert cell.run(task_id) == "succeeded"
    assert list(HoldMarkers(wiring.table()).held(function_id)) == []


def test_a_hold_only_from_the_cell_that_runs_the_task(backend, tmp_path):
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    wiring.tasks().apply(task_id, lifecycle.start("cell-other", now_ns()))
    set_paused(function_id, True)
    task = wiring.tasks().get(task_id, consistent=True)
    assert holds().hold(task, "cell-a") is False
    assert wiring.tasks().get(task_id, consistent=True).state is lifecycle.State.RUNNING
    assert list(HoldMarkers(wiring.table()).held(function_id)) == []


def test_a_released_task_is_back_on_its_open_shard(backend, tmp_path):
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    set_paused(function_id, True)
    cell = executor(tmp_path, "cell-a")
    cell.holds = holds()
    cell.run(task_id)
    item = wiring.table().get(f"TASK#{task_id}", "TASK", consistent=True)
    assert "GSI3PK" not in item and item["GSI3SK"]
    set_paused(function_id, False)
    holds().release_function(function_id)
    item = wiring.table().get(f"TASK#{task_id}", "TASK", consistent=True)
    assert item["GSI3PK"] == open_partition(task_id)


def test_the_pause_cache_of_a_warm_executor_stays_bounded(backend, monkeypatch):
    from taskfn.services import holds as holds_module

    monkeypatch.setattr(holds_module, "SEEN_MAX", 8)
    service = holds_module.HoldService.from_env()
    for n in range(50):
        service.paused(f"6560f1a0{n:016x}")
    assert len(service._seen) <= 8
