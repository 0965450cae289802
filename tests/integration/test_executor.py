"""The executor against moto with real child processes: large payloads through S3,
duplicate deliveries, a deleted function, progress, and losing a task while it runs."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from taskfn import lifecycle, wiring
from taskfn.models import TaskRecord, now_ns
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.packaging import zip_from_source
from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import run_python
from taskfn.services.builds import BuildService
from taskfn.services.converger import Converger
from taskfn.services.executor import Executor, NotEnoughTime
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

from .helpers import ALICE, make_zip
from .test_python_runtime import _wait_dead


def executor(tmp_path: Path, cell: str, runner=run_python) -> Executor:
    return Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                    CodeCache(tmp_path / cell), cell, get_settings(), runner)


def function_with(source: str) -> str:
    return FunctionService.from_env().create(ALICE, NewFunction(name="f", source=source)).id


def new_task(function_id: str, body=None, query=None) -> str:
    data = json.dumps(body).encode()
    return TaskService.from_env().create(
        ALICE, function_id, body=body, query=query or {}, size=len(data)).task_guid


def test_large_input_and_result_travel_through_s3(backend, tmp_path):
    function_id = function_with(
        "def handler(event, context):\n    return {'echo': event['body'], 'more': 'y' * 50000}\n")
    body = {"blob": "x" * 60_000}
    task_id = new_task(function_id, body)
    assert executor(tmp_path, "cell-a").run(task_id) == "succeeded"
    stored = wiring.tasks().get(task_id)
    assert stored.input_key and stored.response_key and stored.response_body is None
    result = TaskService.from_env().result(ALICE, task_id)
    assert result.status == 200
    assert json.loads(result.body) == {"echo": body, "more": "y" * 50000}


def test_concurrent_duplicate_deliveries_run_the_function_once(backend, tmp_path):
    function_id = function_with(
        "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return 1\n")
    task_id = new_task(function_id)
    executors = [executor(tmp_path, f"cell-{n}") for n in range(3)]
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda e=e: outcomes.append(e.run(task_id)))
               for e in executors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["skipped", "skipped", "succeeded"]
    assert executors[0].run(task_id) == "skipped"


def test_a_queued_task_runs_the_code_it_was_created_with(backend, tmp_path):
    function_id = function_with("def handler(event, context):\n    return 'first'\n")
    task_id = new_task(function_id)
    BuildService.from_env().create(
        ALICE, function_id, make_zip({"main.py": "def handler(e, c):\n    return 'second'\n"}))
    FunctionService.from_env().delete(ALICE, function_id)
    assert executor(tmp_path, "cell-a").run(task_id) == "succeeded"
    assert TaskService.from_env().result(ALICE, task_id).body == b"first"


def test_a_task_without_fixed_code_fails_when_its_function_is_gone(backend, tmp_path):
    function_id = function_with("def handler(event, context):\n    return 1\n")
    task_id = "6560f1a0000000000000ee01"
    wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner="alice", function_id=function_id,
                                      created_at=1, updated_at=1))
    FunctionService.from_env().delete(ALICE, function_id)
    assert executor(tmp_path, "cell-a").run(task_id) == "failed"
    task = wiring.tasks().get(task_id)
    assert task.state == "Completed" and task.failed
    assert task.failure_reason == "the function was deleted"
    assert TaskService.from_env().result(ALICE, task_id).status == 500


def test_progress_reported_by_the_function_is_recorded(backend, tmp_path):
    function_id = function_with(
        "def handler(event, context):\n    context.set_progress(30)\n    raise RuntimeError('x')\n")
    task_id = new_task(function_id)
    assert executor(tmp_path, "cell-a").run(task_id) == "failed"
    task = wiring.tasks().get(task_id)
    assert task.progress == 30 and task.response_status == 500


def test_too_little_lambda_time_leaves_the_task_pending(backend, tmp_path):
    task_id = new_task(function_with("def handler(event, context):\n    return 1\n"))
    with pytest.raises(NotEnoughTime):
        executor(tmp_path, "cell-a").run(task_id, remaining_ms=lambda: 5_000)
    assert wiring.tasks().get(task_id).state == "Pending"


def test_a_task_failed_elsewhere_while_running_keeps_that_outcome(backend, tmp_path):
    task_id = new_task(function_with("def handler(event, context):\n    return 'late'\n"))

    def runner(*args, **kwargs):
        wiring.tasks().apply(task_id, lifecycle.fail("cell disappeared", 99))
        return run_python(*args, **kwargs)

    assert executor(tmp_path, "cell-a", runner).run(task_id) == "superseded"
    task = wiring.tasks().get(task_id)
    assert task.failure_reason == "cell disappeared" and task.response_status == 0
    assert TaskService.from_env().result(ALICE, task_id).status == 500


def test_the_code_a_run_is_using_stays_while_other_builds_fill_the_cache(backend, tmp_path):
    """The bound evicts least recently used builds, never the one a sandbox runs from."""
    task_id = new_task(function_with("def handler(event, context):\n    return 'kept'\n"))
    filler = zip_from_source("def handler(event, context):\n    return 0\n# " + "x" * 100_000)
    cache = CodeCache(tmp_path / "code", max_bytes=150_000)  # the task's code and one filler

    def runner(code_dir, event, **kwargs):
        for n in range(3):  # other tasks' builds, arriving while this one runs
            cache.get(f"other-{n}", lambda: filler)
        return run_python(code_dir, event, limits=kwargs["limits"])

    cell = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(), cache, "cell-a",
                    get_settings(), runner)
    assert cell.run(task_id) == "succeeded"
    assert TaskService.from_env().result(ALICE, task_id).body == b"kept"
    assert len([p for p in (tmp_path / "code").iterdir() if not p.name.startswith(".")]) == 2


LOUD = """\
def handler(event, context):
    who = event["body"]["who"]
    print(who * 2000)
    return who + "x" * 40000
"""


def test_an_attempt_that_lost_its_task_does_not_overwrite_the_winner_s_outputs(
        backend, tmp_path):
    """Convergence takes a task from a silent cell and a retry completes it elsewhere; the
    old attempt, unaware, then keeps its (large) outputs before its completion is refused."""
    task_id = new_task(function_with(LOUD), {"who": "winner"})
    table = wiring.table()
    table.update(f"TASK#{task_id}", "TASK", set_values={"retries": 1},
                 condition="attribute_exists(PK)")
    winner = executor(tmp_path, "cell-b")

    def losing_runner(code_dir, event, *, limits, **_):
        silent_for = (get_settings().cell_timeout_s + 1) * lifecycle.SECOND_NS
        report = Converger(wiring.tasks(), wiring.task_queue(), get_settings(),
                           now=lambda: now_ns() + silent_for).run()
        assert report.retried == 1
        table.update(f"TASK#{task_id}", "TASK", set_values={"retry_at": 1},
                     condition="attribute_exists(PK)")  # its back-off is over
        assert winner.run(task_id) == "succeeded"
        return run_python(code_dir, {**event, "body": {"who": "loser"}}, limits=limits)

    assert executor(tmp_path, "cell-a", losing_runner).run(task_id) == "superseded"
    task = wiring.tasks().get(task_id)
    assert task.response_key and task.stdout_key
    blobs = wiring.blobs()
    assert blobs.get(task.response_key).decode().startswith("winner")
    assert blobs.get(task.stdout_key).decode().startswith("winner")
    result = TaskService.from_env().result(ALICE, task_id)
    assert result.body.decode() == "winner" + "x" * 40000
    assert TaskService.from_env().logs(ALICE, task_id).stdout == "winner" * 2000 + "\n"
    # The loser's outputs were kept too, under keys of its own.
    listed = blobs.client.list_objects_v2(Bucket=blobs.bucket, Prefix=f"tasks/{task_id}/")
    keys = {item["Key"] for item in listed["Contents"]} - {task.input_key}
    assert len(keys) == 4 and {task.response_key, task.stdout_key} < keys


def test_a_failing_task_with_retries_runs_again_after_its_back_off_keeping_every_attempt(
        backend, tmp_path):
    function_id = function_with("def handler(event, context):\n    raise ValueError('no')\n")
    task_id = new_task(function_id)
    table = wiring.table()
    table.update(f"TASK#{task_id}", "TASK", set_values={"retries": 2}, condition="#s = :c_s",
                 condition_names={"#s": "state"}, condition_values={"s": "Pending"})
    queue = wiring.task_queue()
    cell = executor(tmp_path, "cell-a")
    cell.queue = queue

    assert cell.run(task_id) == "retrying"
    waiting = wiring.tasks().get(task_id)
    assert (waiting.state, waiting.retried, len(waiting.attempts)) == ("Pending", 1, 1)
    assert waiting.retry_at - waiting.updated_at == 2 * lifecycle.SECOND_NS
    assert "ValueError" in waiting.attempts[0]["failure_reason"]
    assert cell.run(task_id) == "skipped"  # still backing off: it may not start yet

    def back_off_over() -> None:
        table.update(f"TASK#{task_id}", "TASK", set_values={"retry_at": 1},
                     condition="attribute_exists(PK)")

    back_off_over()
    assert cell.run(task_id) == "retrying"
    back_off_over()
    assert cell.run(task_id) == "failed"
    final = wiring.tasks().get(task_id)
    assert (final.state, final.failed, final.retried) == ("Completed", True, 2)
    assert [a["attempt"] for a in final.attempts] == [1, 2]
    # Each retry was sent to the queue with its back-off as the message delay.
    client = queue.client
    attributes = client.get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "2"


# --- cancelled while it runs: the child is stopped ----------------------------------------

SLEEPER = """\
import os, pathlib, subprocess, sys, time

def handler(event, context):
    child = subprocess.Popen(["sleep", "1000"])
    pathlib.Path(event["body"]["pids"]).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(60)
    return "too late"
"""


def _wait_for_pids(path: Path, run: Future) -> list[int]:
    """The pids the running function wrote (itself and a grandchild), once it is running."""
    until = time.monotonic() + 20
    while time.monotonic() < until and not run.done():
        text = path.read_text() if path.exists() else ""
        if len(text.split()) == 2:
            return [int(pid) for pid in text.split()]
        time.sleep(0.05)
    raise AssertionError(f"the function never started: {run.result() if run.done() else ''}")


@pytest.mark.parametrize("mode", ["run_python", "pool"])
def test_a_task_cancelled_while_it_runs_stops_its_process_and_keeps_the_cancel(
        backend, tmp_path, drop_box, mode):
    pids_file = drop_box / "pids"
    task_id = new_task(function_with(SLEEPER), {"pids": str(pids_file)})
    wiring.table().update(f"TASK#{task_id}", "TASK", set_values={"timeout": 120},
                          condition="attribute_exists(PK)")
    settings = get_settings().model_copy(update={"cell_heartbeat_s": 0.3, "cell_timeout_s": 5})
    with contextlib.ExitStack() as stack:
        if mode == "pool":
            pool = stack.enter_context(SandboxPool(1))
            assert pool.wait_ready(10)
            runner = pool.run
        else:
            runner = run_python
        cell = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        CodeCache(tmp_path / "code"), "cell-a", settings, runner)
        with ThreadPoolExecutor(1) as threads:
            started = time.monotonic()
            run = threads.submit(cell.run, task_id)
            pids = _wait_for_pids(pids_file, run)
            assert wiring.tasks().get(task_id).state == "Running"
            wiring.tasks().apply(task_id, lifecycle.cancel(now_ns()))
            assert run.result(timeout=20) == "superseded"
            assert time.monotonic() - started < 20  # stopped, not run for its 60 s
        if mode == "pool":
            assert pool.stats["warm_hits"] == 1
    assert all(_wait_dead(pid) for pid in pids)
    task = wiring.tasks().get(task_id)
    assert (task.state, task.failed) == ("Completed", True)
    assert task.failure_reason == lifecycle.CANCELLED_REASON
    assert task.response_status == 0 and task.cell_id == ""


def test_a_run_that_ends_after_its_task_was_cancelled_writes_nothing(backend, tmp_path):
    task_id = new_task(function_with("def handler(event, context):\n    return 1\n"))
    settings = get_settings().model_copy(update={"cell_heartbeat_s": 0.1, "cell_timeout_s": 5})
    calls = []

    def runner(code_dir, event, *, limits, task_id, function_id, on_progress, cancel):
        calls.append(task_id)  # a run that ignores the cancel and ends with a result
        wiring.tasks().apply(task_id, lifecycle.cancel(now_ns()))
        time.sleep(0.5)  # several heartbeats are refused meanwhile
        return run_python(code_dir, event, limits=limits)

    cell = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                    CodeCache(tmp_path / "code"), "cell-a", settings, runner)
    assert cell.run(task_id) == "superseded"
    assert calls == [task_id]
    task = wiring.tasks().get(task_id)
    assert task.failure_reason == lifecycle.CANCELLED_REASON and task.response_status == 0
