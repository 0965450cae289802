"""The state machine, row by row (reference/bbs.md), with no AWS."""

from __future__ import annotations

import pytest

from taskfn import lifecycle
from taskfn.errors import InvalidRequest, InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.lifecycle import RetryLimitReached, State


def task(state: State, cell: str = "") -> dict:
    return {"task_guid": "t1", "state": state.value, "cell_id": cell, "updated_at": 1}


def test_start_moves_pending_to_running_on_the_cell():
    outcome = lifecycle.apply(lifecycle.start("cell-a", 5), task(State.PENDING))
    assert outcome.changed
    assert outcome.task["state"] == "Running"
    assert outcome.task["cell_id"] == "cell-a"
    assert outcome.task["node"] == "cell-a"
    assert outcome.task["started_at"] == 5


def test_start_twice_on_the_same_cell_is_a_harmless_repeat():
    outcome = lifecycle.apply(lifecycle.start("cell-a", 5), task(State.RUNNING, "cell-a"))
    assert outcome.changed is False


@pytest.mark.parametrize(
    "current", [task(State.RUNNING, "cell-b"), task(State.COMPLETED), task(State.RESOLVING)]
)
def test_start_from_anything_else_is_an_invalid_transition(current):
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.start("cell-a", 5), current)


def test_complete_from_the_running_cell():
    transition = lifecycle.complete("cell-a", 9, failed=False, result="ok")
    outcome = lifecycle.apply(transition, task(State.RUNNING, "cell-a"))
    assert outcome.task["state"] == "Completed"
    assert outcome.task["cell_id"] == ""
    assert outcome.task["first_completed_at"] == 9
    assert outcome.task["result"] == "ok"
    assert outcome.task["failed"] is False


def test_complete_from_another_cell_is_running_on_different_cell():
    transition = lifecycle.complete("cell-b", 9, failed=False)
    with pytest.raises(RunningOnDifferentCell, match="Running on cell cell-a not cell-b"):
        lifecycle.apply(transition, task(State.RUNNING, "cell-a"))


@pytest.mark.parametrize("state", [State.PENDING, State.COMPLETED, State.RESOLVING])
def test_complete_when_not_running_is_invalid(state):
    with pytest.raises(InvalidStateTransition, match=f"Cannot transition from {state.value}"):
        lifecycle.apply(lifecycle.complete("cell-a", 9, failed=True), task(state))


@pytest.mark.parametrize("state", [State.PENDING, State.RUNNING])
def test_fail_and_cancel_complete_unfinished_tasks_from_anywhere(state):
    failed = lifecycle.apply(lifecycle.fail("boom", 3), task(state, "cell-x")).task
    assert (failed["state"], failed["failed"], failed["failure_reason"]) == (
        "Completed", True, "boom")
    cancelled = lifecycle.apply(lifecycle.cancel(3), task(state, "cell-x")).task
    assert cancelled["failure_reason"] == "task was cancelled"


@pytest.mark.parametrize("state", [State.COMPLETED, State.RESOLVING])
def test_fail_of_a_finished_task_is_invalid(state):
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.fail("late", 3), task(state))


def test_resolving_only_from_completed():
    assert lifecycle.apply(lifecycle.resolving(4), task(State.COMPLETED)).task["state"] == (
        "Resolving"
    )
    for state in (State.PENDING, State.RUNNING, State.RESOLVING):
        with pytest.raises(InvalidStateTransition):
            lifecycle.apply(lifecycle.resolving(4), task(state))


def test_progress_only_from_the_running_cell_and_clamped():
    outcome = lifecycle.apply(lifecycle.progress("c", 250, 2), task(State.RUNNING, "c"))
    assert outcome.task["progress"] == 100
    assert outcome.task["state"] == "Running"
    with pytest.raises(RunningOnDifferentCell):
        lifecycle.apply(lifecycle.progress("d", 5, 2), task(State.RUNNING, "c"))


def test_reasons_are_capped_like_bbs():
    assert lifecycle.cap_reason("x" * 1023) == "x" * 1023
    capped = lifecycle.cap_reason("y" * 5000)
    assert capped == "y" * 1013 + "(truncated)"
    assert len(capped) == 1024
    transition = lifecycle.fail("z" * 2000, 1)
    assert transition.updates["failure_reason"].endswith("(truncated)")


def test_explain_without_a_task_is_not_found():
    with pytest.raises(NotFound):
        lifecycle.explain(lifecycle.start("c", 1), None)


def test_only_the_documented_moves_exist():
    moves = {(t.from_states, t.to_state) for t in (
        lifecycle.start("c", 1), lifecycle.complete("c", 1, failed=False),
        lifecycle.fail("r", 1), lifecycle.cancel(1), lifecycle.resolving(1),
        lifecycle.reject("r", 1), lifecycle.reject_exhausted("r", 1))}
    for from_states, to_state in moves:
        for state in from_states:
            assert (state, to_state) in lifecycle.ALLOWED


# --- the rest of the table: cancel, reject, delete; completion fields ---------------------


def test_completion_sets_bbs_fields_and_caps_the_failure_reason():
    transition = lifecycle.complete("cell-a", 7, failed=True, failure_reason="f" * 1500,
                                    result="partial")
    done = lifecycle.apply(transition, task(State.RUNNING, "cell-a")).task
    assert (done["first_completed_at"], done["updated_at"], done["cell_id"]) == (7, 7, "")
    assert done["failure_reason"] == "f" * 1013 + "(truncated)"
    assert done["result"] == "partial"
    ok = lifecycle.apply(lifecycle.complete("cell-a", 7, failed=False, failure_reason="x"),
                         task(State.RUNNING, "cell-a")).task
    assert ok["failure_reason"] == ""  # only a failure has a reason


@pytest.mark.parametrize("state", [State.COMPLETED, State.RESOLVING])
def test_cancel_of_a_finished_task_is_invalid(state):
    with pytest.raises(InvalidStateTransition, match=f"Cannot transition from {state.value}"):
        lifecycle.apply(lifecycle.cancel(3), task(state))


def test_cancel_clears_the_cell_and_fails_the_task():
    cancelled = lifecycle.apply(lifecycle.cancel(3), task(State.RUNNING, "cell-a")).task
    assert (cancelled["state"], cancelled["failed"], cancelled["cell_id"]) == (
        "Completed", True, "")
    assert cancelled["first_completed_at"] == 3


@pytest.mark.parametrize("state", [State.PENDING, State.RUNNING])
def test_reject_puts_the_task_back_to_pending_counted_and_on_its_cell(state):
    current = {**task(state, "cell-a"), "rejection_count": 1}
    outcome = lifecycle.apply(lifecycle.reject("no room", 8, max_retries=3), current)
    assert outcome.changed
    after = outcome.task
    assert (after["state"], after["rejection_count"], after["rejection_reason"]) == (
        "Pending", 2, "no room")
    assert after["cell_id"] == "cell-a"  # BBS keeps it
    assert after["updated_at"] == 8


def test_reject_counts_from_zero_when_the_record_has_no_count():
    after = lifecycle.apply(lifecycle.reject("r", 1), task(State.PENDING)).task
    assert after["rejection_count"] == 1


def test_rejection_reason_is_capped():
    after = lifecycle.apply(lifecycle.reject("r" * 4000, 1), task(State.PENDING)).task
    assert after["rejection_reason"] == "r" * 1013 + "(truncated)"
    exhausted = lifecycle.reject_exhausted("q" * 4000, 1)
    assert exhausted.updates["rejection_reason"] == "q" * 1013 + "(truncated)"
    assert exhausted.updates["failure_reason"] == "q" * 1013 + "(truncated)"


def test_reject_at_the_limit_asks_for_the_failing_rejection():
    at_limit = {**task(State.RUNNING, "cell-a"), "rejection_count": 3}
    with pytest.raises(RetryLimitReached):
        lifecycle.apply(lifecycle.reject("r", 1, max_retries=3), at_limit)
    failed = lifecycle.apply(lifecycle.reject_exhausted("gave up", 9), at_limit).task
    assert (failed["state"], failed["failed"], failed["failure_reason"]) == (
        "Completed", True, "gave up")
    assert (failed["rejection_count"], failed["rejection_reason"]) == (4, "gave up")
    assert (failed["cell_id"], failed["first_completed_at"]) == ("", 9)


def rejection(current: dict, max_retries: int) -> dict:
    """What the service does: retry while under the limit, else the failing rejection."""
    try:
        return lifecycle.apply(lifecycle.reject("why", 1, max_retries), current).task
    except RetryLimitReached:
        return lifecycle.apply(lifecycle.reject_exhausted("why", 1), current).task


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_the_count_before_the_rejection_is_compared_with_the_limit(max_retries):
    current = task(State.PENDING)
    for count in range(1, max_retries + 1):
        current = rejection(current, max_retries)
        assert (current["state"], current["rejection_count"]) == ("Pending", count)
    current = rejection(current, max_retries)
    assert (current["state"], current["failed"]) == ("Completed", True)
    assert current["rejection_count"] == max_retries + 1
    with pytest.raises(InvalidRequest):
        rejection(current, max_retries)


@pytest.mark.parametrize("state", [State.COMPLETED, State.RESOLVING])
def test_reject_of_a_finished_task_is_an_invalid_request(state):
    for transition in (lifecycle.reject("r", 1), lifecycle.reject_exhausted("r", 1)):
        with pytest.raises(InvalidRequest, match=f"cannot reject a {state.value} task"):
            lifecycle.apply(transition, task(state))


def test_delete_removes_only_a_resolving_task():
    assert lifecycle.apply(lifecycle.delete(), task(State.RESOLVING)) == lifecycle.Outcome(
        True, None)
    for state in (State.PENDING, State.RUNNING, State.COMPLETED):
        with pytest.raises(InvalidStateTransition,
                           match=f"Cannot transition from {state.value} to Resolving"):
            lifecycle.apply(lifecycle.delete(), task(state))


def test_explain_of_a_race_lost_after_the_condition_failed():
    """The write failed, yet the task as read allows the move: it changed in between."""
    with pytest.raises(InvalidStateTransition, match="concurrently"):
        lifecycle.explain(lifecycle.resolving(1), task(State.COMPLETED))


def running_with_retries(retries: int, retried: int = 0) -> dict:
    return task(State.RUNNING, "cell-a") | {"retries": retries, "retried": retried,
                                            "started_at": 3}


def test_a_failed_attempt_with_retries_left_goes_back_to_pending_after_two_to_the_n():
    current = running_with_retries(3, retried=1)
    assert lifecycle.retries_left(current)
    outcome = lifecycle.apply(lifecycle.retry(current, "boom", 10, cell_id="cell-a"), current)
    after = outcome.task
    assert (after["state"], after["cell_id"], after["retried"]) == ("Pending", "", 2)
    assert after["retry_at"] == 10 + 4 * lifecycle.SECOND_NS  # attempt 2 failed: 2^2 s
    assert after["attempts"] == [{"attempt": 2, "cell_id": "cell-a", "started_at": 3,
                                  "finished_at": 10, "failure_reason": "boom"}]
    assert not lifecycle.retries_left(running_with_retries(2, retried=2))


def test_a_retry_is_taken_once_and_only_from_the_running_cell():
    current = running_with_retries(3)
    decided = lifecycle.retry(current, "boom", 10, cell_id="cell-a")
    with pytest.raises(InvalidStateTransition):  # someone retried it meanwhile
        lifecycle.apply(decided, current | {"retried": 1})
    with pytest.raises(RunningOnDifferentCell):
        lifecycle.apply(lifecycle.retry(current, "boom", 10, cell_id="cell-b"), current)


def test_a_task_backing_off_cannot_start_before_its_retry_at():
    waiting = task(State.PENDING) | {"retry_at": 100}
    with pytest.raises(InvalidStateTransition, match="backs off"):
        lifecycle.apply(lifecycle.start("cell-a", 99), waiting)
    assert lifecycle.apply(lifecycle.start("cell-a", 100), waiting).changed
