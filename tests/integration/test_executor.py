"""The executor against moto with real child processes: large payloads through S3,
duplicate deliveries, a deleted function, progress, and losing a task while it runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from taskfn import lifecycle, wiring
from taskfn.models import TaskRecord
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.python import run_python
from taskfn.services.builds import BuildService
from taskfn.services.executor import Executor, NotEnoughTime
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

from .helpers import ALICE, make_zip


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
