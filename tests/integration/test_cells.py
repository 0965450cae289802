"""The Cell API's service against moto: every row of BBS's state machine as conditional
writes, list.r3 through the domain index, the owner rules, and a desired task run by the
built-in executor."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from taskfn import aws, wiring
from taskfn.adapters import bbs
from taskfn.errors import (
    InvalidRequest,
    InvalidStateTransition,
    NotFound,
    ResourceExists,
    RunningOnDifferentCell,
)
from taskfn.models import Caller, Scope, TaskRecord
from taskfn.runtime.codecache import CodeCache
from taskfn.services.cells import BUILT_IN_HINT, CellService, DesiredTask
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.queue import decode

from .helpers import ALICE, BOB

CELL = Caller(user="ops", scope=Scope.CELL, node="cell-1", shared=True)  # a shared node's


def cells(**settings) -> CellService:
    return CellService(wiring.tasks(), wiring.functions(), wiring.task_queue(),
                       get_settings().model_copy(update=settings))


def desire(service: CellService | None = None, guid: str = "task-1", *, caller: Caller = ALICE,
           domain: str = "d", tags: tuple[str, ...] = ("gpu",), **extra) -> TaskRecord:
    return (service or cells()).desire(caller, DesiredTask(
        task_guid=guid, domain=domain, placement_tags=tags, **extra))


def state(guid: str = "task-1") -> TaskRecord:
    return wiring.tasks().get(guid)


def queued() -> list[str]:
    answer = aws.client("sqs").receive_message(
        QueueUrl=get_settings().task_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [decode(message["Body"]) for message in answer.get("Messages", [])]


def function_with(source: str, caller: Caller = ALICE) -> str:
    return FunctionService.from_env().create(caller, NewFunction(name="f", source=source)).id


# --- DesireTask -------------------------------------------------------------------------


def test_desire_writes_a_pending_task_that_waits_for_a_cell_with_its_tags(backend):
    task = desire(definition={"log_guid": "lg", "memory_mb": 64}, annotation="note",
                  completion_callback_url="https://example.com/done")
    stored = state()
    assert stored.state == "Pending" and stored.owner == "alice" and stored.domain == "d"
    assert stored.created_at == stored.updated_at == task.created_at
    assert stored.first_completed_at == 0
    assert stored.task_definition == {"log_guid": "lg", "memory_mb": 64}
    assert (stored.placement_tags, stored.annotation) == (["gpu"], "note")
    assert stored.completion_callback_url == "https://example.com/done"
    assert queued() == []  # a tagged task is not the built-in executor's
    view = bbs.task_view(stored)
    assert view["log_guid"] == "lg" and view["placement_tags"] == ["gpu"]
    assert view["state"] == "Pending" and view["rejection_count"] == 0


def test_a_duplicate_guid_is_resource_exists_whoever_desires_it(backend):
    desire()
    with pytest.raises(ResourceExists):
        desire()
    with pytest.raises(ResourceExists):
        desire(caller=BOB, domain="other")
    assert state().owner == "alice"


def test_an_untagged_task_needs_one_of_the_callers_functions_with_code(backend):
    with pytest.raises(InvalidRequest, match="built-in executor runs taskfn functions"):
        desire(tags=())
    bobs = function_with("def handler(event, context):\n    return 1\n", BOB)
    with pytest.raises(InvalidRequest, match="function not found") as raised:
        desire(tags=(), function_id=bobs)
    assert raised.value.detail == BUILT_IN_HINT
    empty = FunctionService.from_env().create(ALICE, NewFunction(name="empty")).id
    with pytest.raises(InvalidRequest, match="no code yet"):
        desire(tags=(), function_id=empty)
    code = function_with("def handler(event, context):\n    return 1\n")
    with pytest.raises(InvalidRequest, match="input is at most"):
        desire(tags=(), function_id=code, input="x" * (40 * 1024))
    assert state() is None and queued() == []


def test_an_untagged_task_with_a_function_is_queued_with_its_code_fixed(backend):
    function_id = function_with("def handler(event, context):\n    return 1\n")
    function = FunctionService.from_env().get(ALICE, function_id)
    desire(tags=(), function_id=function_id, input={"n": 2})
    stored = state()
    assert (stored.function_id, stored.build_id, stored.code_key) == (
        function_id, function.build_id, function.code_key)
    assert stored.input == {"body": {"n": 2}, "query": {}}
    assert queued() == ["task-1"]
    view = bbs.task_view(stored)
    assert (view["function_id"], view["input"]) == (function_id, {"n": 2})


# --- StartTask, CompleteTask ------------------------------------------------------------


def test_start_once_then_a_repeat_on_the_same_cell_is_false_without_change(backend):
    desire()
    service = cells()
    assert service.start("task-1", "cell-1") is True
    started = state()
    assert (started.state, started.cell_id) == ("Running", "cell-1")
    assert service.start("task-1", "cell-1") is False
    assert state().updated_at == started.updated_at


def test_start_from_another_cell_or_of_a_finished_task_is_an_invalid_transition(backend):
    desire()
    service = cells()
    service.start("task-1", "cell-1")
    with pytest.raises(InvalidStateTransition, match="Cannot transition from Running to Running"):
        service.start("task-1", "cell-2")
    service.complete("task-1", "cell-1", failed=False, failure_reason="", result="ok")
    with pytest.raises(InvalidStateTransition, match="from Completed"):
        service.start("task-1", "cell-1")
    with pytest.raises(NotFound):
        service.start("no-such-task", "cell-1")


def test_start_races_have_one_winner(backend):
    desire()
    service = cells()
    answers: list[object] = []

    def start(cell: str) -> None:
        try:
            answers.append(service.start("task-1", cell))
        except InvalidStateTransition as error:
            answers.append(error)

    threads = [threading.Thread(target=start, args=(f"cell-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(True) == 1
    assert sum(isinstance(a, InvalidStateTransition) for a in answers) == 5


def test_complete_from_the_wrong_cell_is_running_on_different_cell(backend):
    desire()
    service = cells()
    with pytest.raises(InvalidStateTransition, match="from Pending to Completed"):
        service.complete("task-1", "cell-1", failed=False, failure_reason="", result="")
    service.start("task-1", "cell-1")
    with pytest.raises(RunningOnDifferentCell, match="Running on cell cell-1 not cell-2"):
        service.complete("task-1", "cell-2", failed=False, failure_reason="", result="")
    service.complete("task-1", "cell-1", failed=True, failure_reason="r" * 2000, result="half")
    done = state()
    assert (done.state, done.failed, done.result, done.cell_id) == (
        "Completed", True, "half", "")
    assert done.failure_reason == "r" * 1013 + "(truncated)"
    assert done.first_completed_at == done.updated_at > 0
    with pytest.raises(InvalidStateTransition, match="from Completed to Completed"):
        service.complete("task-1", "cell-1", failed=False, failure_reason="", result="")


# --- FailTask, CancelTask ---------------------------------------------------------------


@pytest.mark.parametrize("running", [False, True])
def test_fail_completes_an_unfinished_task_from_any_cell(backend, running):
    desire()
    service = cells()
    if running:
        service.start("task-1", "cell-1")
    service.fail("task-1", "disk full")
    failed = state()
    assert (failed.state, failed.failed, failed.failure_reason) == (
        "Completed", True, "disk full")
    with pytest.raises(InvalidStateTransition):
        service.fail("task-1", "again")


@pytest.mark.parametrize("running", [False, True])
def test_cancel_of_a_pending_or_running_task(backend, running):
    desire()
    service = cells()
    if running:
        service.start("task-1", "cell-1")
    with pytest.raises(NotFound):
        service.cancel(BOB, "task-1")
    service.cancel(ALICE, "task-1")
    cancelled = state()
    assert (cancelled.state, cancelled.failed, cancelled.failure_reason, cancelled.cell_id) == (
        "Completed", True, "task was cancelled", "")
    with pytest.raises(InvalidStateTransition, match="from Completed"):
        service.cancel(ALICE, "task-1")


# --- RejectTask -------------------------------------------------------------------------


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_reject_retries_up_to_the_limit_then_fails(backend, max_retries):
    desire()
    service = cells(max_task_retries=max_retries)
    for count in range(1, max_retries + 1):
        service.start("task-1", "cell-1")
        service.reject("task-1", f"no room {count}")
        again = state()
        assert (again.state, again.rejection_count) == ("Pending", count)
        assert (again.rejection_reason, again.cell_id) == (f"no room {count}", "cell-1")
    service.reject("task-1", "no room at all")
    failed = state()
    assert (failed.state, failed.failed, failed.failure_reason) == (
        "Completed", True, "no room at all")
    assert failed.rejection_count == max_retries + 1
    with pytest.raises(InvalidRequest):
        service.reject("task-1", "too late")


def test_rejection_reasons_are_capped(backend):
    desire()
    cells().reject("task-1", "z" * 3000)
    assert state().rejection_reason == "z" * 1013 + "(truncated)"


def test_racing_rejections_count_every_one_and_fail_once(backend):
    """Five rejections at once with a limit of 3: three retries, one failure, and the last
    finds the task finished. The count condition is part of the write, so none is lost."""
    desire()
    service = cells(max_task_retries=3)
    errors: list[Exception] = []

    def reject() -> None:
        try:
            service.reject("task-1", "busy")
        except InvalidRequest as error:
            errors.append(error)

    threads = [threading.Thread(target=reject) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = state()
    assert (final.state, final.failed, final.rejection_count) == ("Completed", True, 4)
    assert len(errors) == 1


def test_reject_of_a_resolving_task_is_an_invalid_request(backend):
    desire()
    service = cells()
    service.fail("task-1", "x")
    service.resolving(ALICE, "task-1")
    with pytest.raises(InvalidRequest, match="cannot reject a Resolving task"):
        service.reject("task-1", "r")
    with pytest.raises(NotFound):
        service.reject("no-such-task", "r")


# --- ResolvingTask, DeleteTask ----------------------------------------------------------


def test_resolving_only_from_completed_and_delete_only_from_resolving(backend):
    desire()
    service = cells()
    for attempt in (service.resolving, service.delete):
        with pytest.raises(InvalidStateTransition, match="from Pending"):
            attempt(ALICE, "task-1")
    service.start("task-1", "cell-1")
    with pytest.raises(InvalidStateTransition, match="from Running to Resolving"):
        service.resolving(ALICE, "task-1")
    service.complete("task-1", "cell-1", failed=False, failure_reason="", result="ok")
    with pytest.raises(InvalidStateTransition, match="from Completed to Resolving"):
        service.delete(ALICE, "task-1")
    with pytest.raises(NotFound):
        service.resolving(BOB, "task-1")
    service.resolving(ALICE, "task-1")
    assert state().state == "Resolving"
    with pytest.raises(InvalidStateTransition, match="from Resolving to Resolving"):
        service.resolving(ALICE, "task-1")
    with pytest.raises(NotFound):
        service.delete(BOB, "task-1")
    service.delete(ALICE, "task-1")
    assert state() is None
    assert service.list(ALICE, domain="d") == []
    with pytest.raises(NotFound):
        service.delete(ALICE, "task-1")


# --- list.r3 and the owner rules --------------------------------------------------------


def test_list_filters_by_domain_and_cell_oldest_first(backend):
    service = cells()
    for guid, domain in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")):
        desire(service, guid, domain=domain)
    service.start("a2", "cell-1")
    service.start("a3", "cell-2")
    assert [t.task_guid for t in service.list(CELL, domain="a")] == ["a1", "a2", "a3"]
    assert [t.task_guid for t in service.list(CELL, domain="b")] == ["b1"]
    assert [t.task_guid for t in service.list(CELL, domain="a", cell_id="cell-1")] == ["a2"]
    assert service.list(CELL, domain="b", cell_id="cell-1") == []
    assert service.list(CELL, domain="nothing-here") == []
    with pytest.raises(InvalidRequest, match="domain is required"):
        service.list(CELL, domain="", cell_id="cell-1")


def test_a_user_lists_their_own_tasks_and_a_cell_everyones(backend):
    service = cells()
    desire(service, "alices", domain="shared")
    desire(service, "bobs", domain="shared", caller=BOB)
    assert [t.task_guid for t in service.list(ALICE, domain="shared")] == ["alices"]
    assert [t.task_guid for t in service.list(BOB, domain="shared")] == ["bobs"]
    assert [t.task_guid for t in service.list(CELL, domain="shared")] == ["alices", "bobs"]


def test_a_list_stops_at_its_bound(backend):
    service = cells(cell_list_max=2)
    for n in range(3):
        desire(service, f"t{n}")
    assert [t.task_guid for t in service.list(CELL, domain="d")] == ["t0", "t1"]


def test_another_users_guid_is_not_found_and_a_cell_reads_any(backend):
    desire()
    service = cells()
    assert service.get(ALICE, "task-1").task_guid == "task-1"
    with pytest.raises(NotFound):
        service.get(BOB, "task-1")
    with pytest.raises(NotFound):
        service.get(ALICE, "no-such-task")
    with pytest.raises(NotFound):
        service.get(ALICE, "x" * 300)  # longer than any guid: answered without a read
    assert service.get(CELL, "task-1").owner == "alice"


def test_a_platform_task_is_the_same_record_through_the_cell_api(backend):
    """Created by the GreenCloud route: readable by guid, not listed (it has no domain)."""
    function_id = function_with("def handler(event, context):\n    return 1\n")
    created = TaskService.from_env().create(ALICE, function_id, body=None, query={}, size=0)
    service = cells()
    view = bbs.task_view(service.get(ALICE, created.task_guid))
    assert view["task_guid"] == created.task_guid and view["function_id"] == function_id
    assert view["domain"] == "taskfn" and "input" not in view
    assert service.list(ALICE, domain="taskfn") == []
    service.cancel(ALICE, created.task_guid)
    assert TaskService.from_env().get(ALICE, created.task_guid).finished


@pytest.mark.parametrize("failed", [False, True], ids=["succeeded", "failed"])
def test_a_cell_s_result_is_the_platform_api_s_result(backend, failed):
    """A cell reports a result string, not an HTTP answer: /v1/task/{guid}/result gives that
    string (200), or the failure as the platform's JSON error (500), never a 500 for a
    success."""
    desire()
    service = cells()
    service.start("task-1", "cell-1")
    service.complete("task-1", "cell-1", failed=failed, failure_reason="disk full" if failed
                     else "", result="" if failed else "42 <b>done</b>")
    answer = TaskService.from_env().result(ALICE, "task-1")
    if failed:
        assert answer.status == 500
        assert json.loads(answer.body) == {"errorType": "TaskFailed", "errorMessage": "disk full"}
    else:
        assert (answer.status, answer.body) == (200, b"42 <b>done</b>")
        assert answer.headers["Content-Type"].startswith("text/plain")


# --- the built-in executor --------------------------------------------------------------


def run_queued(tmp_path: Path) -> list[str]:
    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        CodeCache(tmp_path / "code"), "executor-test", get_settings())
    return [executor.run(task_id) for task_id in queued()]


def test_an_untagged_desired_task_is_run_by_the_built_in_executor(backend, tmp_path):
    function_id = function_with(
        "def handler(event, context):\n    return {'twice': event['body']['n'] * 2}\n")
    desire(tags=(), function_id=function_id, input={"n": 21})
    assert run_queued(tmp_path) == ["succeeded"]
    done = cells().get(ALICE, "task-1")
    assert (done.state, done.failed, done.cell_id) == ("Completed", False, "")
    assert json.loads(done.result) == {"twice": 42}
    assert done.node == "executor-test"
    assert bbs.task_view(done)["result"] == done.result


def test_a_result_is_text_of_at_most_10_kb_from_a_successful_run(backend, tmp_path):
    big = function_with("def handler(event, context):\n    return 'x' * 20000\n")
    binary = function_with("def handler(event, context):\n    return b'\\x00\\xff'\n")
    broken = function_with("def handler(event, context):\n    raise ValueError('no')\n")
    for guid, function_id in (("big", big), ("binary", binary), ("broken", broken)):
        desire(guid=guid, tags=(), function_id=function_id)
    assert sorted(run_queued(tmp_path)) == ["failed", "succeeded", "succeeded"]
    assert [state(g).result for g in ("big", "binary", "broken")] == ["", "", ""]
    assert state("broken").failed and "no" in state("broken").failure_reason
    # the whole response stays readable through the platform API
    assert TaskService.from_env().result(ALICE, state("big").task_guid).body == b"x" * 20000


def test_a_failed_attempt_with_retries_left_waits_its_back_off_then_runs_again(backend):
    service = cells()
    desire(service, retries=1)
    assert service.start("task-1", "cell-1")
    service.complete("task-1", "cell-1", failed=True, failure_reason="disk full", result="")
    waiting = state()
    assert (waiting.state, waiting.retried, waiting.failed) == ("Pending", 1, False)
    assert waiting.attempts == [{"attempt": 1, "cell_id": "cell-1",
                                 "started_at": waiting.attempts[0]["started_at"],
                                 "finished_at": waiting.updated_at,
                                 "failure_reason": "disk full"}]
    with pytest.raises(InvalidStateTransition, match="backs off"):
        service.start("task-1", "cell-2")
    view = bbs.task_view(waiting)
    assert (view["retries"], view["retry_at"], len(view["attempts"])) == (
        1, waiting.retry_at, 1)

    wiring.table().update("TASK#task-1", "TASK", set_values={"retry_at": 1},
                          condition="attribute_exists(PK)")  # the back-off has passed
    assert service.start("task-1", "cell-2")
    service.complete("task-1", "cell-2", failed=True, failure_reason="again", result="")
    final = state()
    assert (final.state, final.failed, final.failure_reason) == ("Completed", True, "again")
    assert len(final.attempts) == 1  # the earlier attempt; the last is the task's own fields

