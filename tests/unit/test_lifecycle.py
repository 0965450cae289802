"""The state machine, row by row (reference/bbs.md), with no AWS."""

from __future__ import annotations

import pytest

from taskfn import lifecycle
from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.lifecycle import State


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
        lifecycle.fail("r", 1), lifecycle.resolving(1))}
    for from_states, to_state in moves:
        for state in from_states:
            assert (state, to_state) in lifecycle.ALLOWED
