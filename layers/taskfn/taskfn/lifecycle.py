"""The task lifecycle: Diego BBS's state machine, pure (no AWS, no I/O).

Every change of a task is described as a `Transition`: the states it may start from, the cell
the task must be on, and the fields it sets. A store turns a transition into one conditional
write; when the condition fails, `explain` reads the task as it was and says why (or that the
write was a harmless repeat, like a second start on the same cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell

REASON_LIMIT = 1024
REASON_KEEP = 1013
CANCELLED_REASON = "task was cancelled"


class State(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    RESOLVING = "Resolving"


# The only moves of the state machine (reference/bbs.md); fail and cancel may also complete a
# task that never started, as BBS's FailTask does.
ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (State.PENDING, State.RUNNING),
        (State.RUNNING, State.COMPLETED),
        (State.PENDING, State.COMPLETED),
        (State.COMPLETED, State.RESOLVING),
    }
)

UNFINISHED = frozenset({State.PENDING, State.RUNNING})


def cap_reason(reason: str) -> str:
    """BBS caps reasons: 1024 characters or more become the first 1013 + "(truncated)"."""
    if len(reason) >= REASON_LIMIT:
        return reason[:REASON_KEEP] + "(truncated)"
    return reason


@dataclass(frozen=True)
class Transition:
    """One conditional write on one task record."""

    action: str
    from_states: frozenset[State]
    to_state: State
    updates: Mapping[str, Any] = field(default_factory=dict)
    # When set, the task's cell_id must equal it (completing or reporting from a cell).
    cell_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a transition did: `changed` is False for a harmless repeat."""

    changed: bool
    task: Mapping[str, Any] | None = None


def start(cell_id: str, now_ns: int) -> Transition:
    """Pending → Running on a cell; the cell is also kept as the task's `node`."""
    return Transition(
        "start",
        frozenset({State.PENDING}),
        State.RUNNING,
        {"cell_id": cell_id, "node": cell_id, "started_at": now_ns, "updated_at": now_ns},
    )


def _completion(failed: bool, failure_reason: str, result: str, now_ns: int) -> dict[str, Any]:
    return {
        "failed": failed,
        "failure_reason": cap_reason(failure_reason) if failed else "",
        "result": result,
        "first_completed_at": now_ns,
        "updated_at": now_ns,
        "cell_id": "",
    }


def complete(
    cell_id: str,
    now_ns: int,
    *,
    failed: bool,
    failure_reason: str = "",
    result: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Transition:
    """Running → Completed, only from the cell the task runs on. `extra` carries the
    runtime's own fields (response, logs) so completion stays one write."""
    updates = {**(extra or {}), **_completion(failed, failure_reason, result, now_ns)}
    return Transition("complete", frozenset({State.RUNNING}), State.COMPLETED, updates, cell_id)


def fail(failure_reason: str, now_ns: int, *, extra: Mapping[str, Any] | None = None) -> Transition:
    """Pending or Running → Completed and failed, from anywhere (BBS FailTask)."""
    updates = {**(extra or {}), **_completion(True, failure_reason, "", now_ns)}
    return Transition("fail", UNFINISHED, State.COMPLETED, updates)


def cancel(now_ns: int) -> Transition:
    """Like fail, with BBS's reason; the cell is told to stop by whoever cancels."""
    return Transition("cancel", UNFINISHED, State.COMPLETED, _completion(
        True, CANCELLED_REASON, "", now_ns))


def progress(cell_id: str, percent: int, now_ns: int) -> Transition:
    """A report from the running function; not a move, but still only from its cell."""
    percent = max(0, min(100, int(percent)))
    return Transition(
        "progress",
        frozenset({State.RUNNING}),
        State.RUNNING,
        {"progress": percent, "updated_at": now_ns},
        cell_id,
    )


def resolving(now_ns: int) -> Transition:
    """Completed → Resolving while a completion callback is delivered."""
    return Transition(
        "resolving", frozenset({State.COMPLETED}), State.RESOLVING, {"updated_at": now_ns}
    )


def check(transition: Transition, task: Mapping[str, Any]) -> None:
    """Raise the BBS error for applying `transition` to `task` as it is, or return if allowed."""
    current = State(task["state"])
    on_cell = task.get("cell_id", "")
    if current not in transition.from_states:
        if (
            transition.cell_id is not None
            and current == State.RUNNING
            and on_cell != transition.cell_id
        ):
            raise RunningOnDifferentCell(f"Running on cell {on_cell} not {transition.cell_id}")
        raise InvalidStateTransition(
            f"Cannot transition from {current.value} to {transition.to_state.value}"
        )
    if transition.cell_id is not None and on_cell != transition.cell_id:
        raise RunningOnDifferentCell(f"Running on cell {on_cell} not {transition.cell_id}")


def explain(transition: Transition, task: Mapping[str, Any] | None) -> Outcome:
    """After a conditional write failed: a harmless repeat, or the error the caller gets."""
    if task is None:
        raise NotFound("task not found")
    if (
        transition.action == "start"
        and task.get("state") == State.RUNNING
        and task.get("cell_id") == transition.updates["cell_id"]
    ):
        return Outcome(changed=False, task=task)
    check(transition, task)
    # The condition failed yet the task now allows the move: it changed in between.
    raise InvalidStateTransition("the task changed concurrently; try again")


def apply(transition: Transition, task: Mapping[str, Any]) -> Outcome:
    """The transition applied to a task in memory (for tests and in-memory reasoning)."""
    try:
        check(transition, task)
    except (InvalidStateTransition, RunningOnDifferentCell):
        return explain(transition, task)
    return Outcome(True, {**task, **transition.updates, "state": transition.to_state.value})
