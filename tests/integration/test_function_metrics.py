"""A function's metrics are counters its tasks' writes keep (atomic ADDs), read with one
GetItem: created today and this week, pending, completed, whoever finished the task."""

from __future__ import annotations

from taskfn import lifecycle, wiring
from taskfn.lifecycle import SECOND_NS
from taskfn.models import DAY_S, now_ns
from taskfn.services.converger import Converger
from taskfn.stores.metrics import METRICS, day_attribute

from .test_executor import executor, function_with, new_task

CODE = "def handler(event, context):\n    return 1\n"
DAY_NS = DAY_S * SECOND_NS


def metrics(function_id: str, at: int | None = None) -> dict[str, int]:
    return wiring.function_metrics().read(function_id, at or now_ns())


def test_creates_and_completions_are_counted(backend, tmp_path):
    function_id = function_with(CODE)
    tasks = [new_task(function_id) for _ in range(3)]
    assert metrics(function_id) == {"todaysTasks": 3, "pendingTasks": 3, "weekTasks": 3,
                                    "completedTasks": 0}
    cell = executor(tmp_path, "cell-a")
    assert cell.run(tasks[0]) == "succeeded"
    wiring.tasks().apply(tasks[1], lifecycle.cancel(now_ns()))
    assert metrics(function_id) == {"todaysTasks": 3, "pendingTasks": 1, "weekTasks": 3,
                                    "completedTasks": 2}
    # A repeated finish is refused by its condition and counts nothing.
    assert cell.run(tasks[0]) == "skipped"
    assert metrics(function_id)["completedTasks"] == 2


def test_convergence_finishing_a_task_counts_it(backend, tmp_path):
    function_id = function_with(CODE)
    task_id = new_task(function_id)
    converger = Converger.from_env()
    converger.now = lambda: now_ns() + 10**13  # long past the Pending expiry
    assert converger.run().expired == 1
    assert wiring.tasks().get(task_id).failed
    assert metrics(function_id)["pendingTasks"] == 0
    assert metrics(function_id)["completedTasks"] == 1


def test_the_week_is_seven_days_and_old_days_are_pruned(backend):
    counters = wiring.function_metrics()
    now = now_ns()
    for days_ago in (12, 7, 6, 3, 0, 0):  # in the order time runs
        counters.created("f1", now - days_ago * DAY_NS)
    seen = metrics("f1", now)
    assert (seen["todaysTasks"], seen["weekTasks"], seen["pendingTasks"]) == (2, 4, 6)
    item = wiring.table().get("FUNC#f1", METRICS)
    assert day_attribute(now, 12) not in item  # removed by the later creates
    assert day_attribute(now, 7) in item  # still within the pruning window's start


def test_a_reading_tomorrow_starts_a_new_day(backend):
    counters = wiring.function_metrics()
    now = now_ns()
    counters.created("f2", now)
    tomorrow = metrics("f2", now + DAY_NS)
    assert (tomorrow["todaysTasks"], tomorrow["weekTasks"]) == (0, 1)


def test_a_function_without_tasks_reads_zeros(backend):
    assert metrics("never") == {"todaysTasks": 0, "pendingTasks": 0, "weekTasks": 0,
                                "completedTasks": 0}


def test_a_pass_finishing_many_tasks_of_a_function_counts_them_with_one_write(
        backend, aws_calls):
    function_id = function_with(CODE)
    for _ in range(3):
        new_task(function_id)
    converger = Converger.from_env()
    converger.now = lambda: now_ns() + 10**13  # long past the Pending expiry
    aws_calls.clear()
    assert converger.run().expired == 3
    assert metrics(function_id)["pendingTasks"] == 0
    assert metrics(function_id)["completedTasks"] == 3
    counter_writes = [params for op, params in aws_calls if op == "UpdateItem"
                      and params["Key"]["SK"] == {"S": "METRICS"}]
    assert len(counter_writes) == 1
