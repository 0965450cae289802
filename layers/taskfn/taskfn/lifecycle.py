"""The task lifecycle: Diego BBS's state machine, pure (no AWS, no I/O).

Every change of a task is described as a `Transition`: the states it may start from, the cell
the task must be on, the rejection count it must be below, and the fields it sets or adds to.
A store turns a transition into one conditional write; when the condition fails, `explain`
reads the task as it was and says why (or that the write was a harmless repeat, like a second
start on the same cell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from taskfn.errors import (
    InvalidRequest,
    InvalidStateTransition,
    NotFound,
    RunningOnDifferentCell,
)

REASON_LIMIT = 1024
REASON_KEEP = 1013
CANCELLED_REASON = "task was cancelled"
# BBS's convergence reasons.
EXPIRED_REASON = "not started within time limit"
CELL_LOST_REASON = "cell disappeared before completion"
# diego-release's bbs.max_task_retries: rejections a task survives before it fails.
MAX_TASK_RETRIES = 3
# Retries a task may ask for (taskfn's): after failed attempt n it waits 2^n seconds, and
# 2^8 = 256 s keeps every wait within one SQS message delay (900 s).
MAX_RETRIES = 8
SECOND_NS = 1_000_000_000


class State(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    RESOLVING = "Resolving"


# The only moves of the state machine (reference/bbs.md); fail and cancel may also complete a
# task that never started, as BBS's FailTask does, and a rejection puts a task back to Pending.
# Convergence demotes a Resolving task whose callback stalled back to Completed. DeleteTask is
# not a move: it removes a Resolving task (or convergence an expired Completed one).
ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (State.PENDING, State.RUNNING),
        (State.RUNNING, State.COMPLETED),
        (State.PENDING, State.COMPLETED),
        (State.COMPLETED, State.RESOLVING),
        (State.RESOLVING, State.COMPLETED),
        (State.PENDING, State.PENDING),
        (State.RUNNING, State.PENDING),
        # A conversation's next turn (Coder's send): a finished turn's task runs again.
        (State.COMPLETED, State.PENDING),
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
    # When set, the task's rejection_count must be below it (a rejection that may still retry).
    max_rejections: int | None = None
    # Counters the write adds to atomically (rejection_count + 1), whatever their value.
    increments: Mapping[str, int] = field(default_factory=dict)
    # The write removes the task instead of changing it (DeleteTask).
    removes: bool = False
    # When set, the task's updated_at must equal it: the converger fails a task only if it
    # has not heartbeated since it was read.
    updated_at: int | None = None
    # When set, the task's count of retried attempts must equal it: a retry decided on what
    # was read cannot be taken twice.
    retried: int | None = None
    # When set, a task backing off (retry_at later than this) cannot start yet.
    not_before: int | None = None
    # Lists the write appends to (an attempt to `attempts`).
    appends: Mapping[str, list[Any]] = field(default_factory=dict)
    # When True, the task must be held for its paused function (held_at set): a release.
    held: bool = False
    # When set, the task's owner must equal it: a user's node acts only on its owner's tasks.
    owner: str | None = None
    # When True, the task must not need privileged capabilities: a node that offers none.
    unprivileged: bool = False
    # When set, the task's conversation turn must equal it: a send, pause or input decided
    # on the turn read cannot act on another one (Coder's agent tasks).
    turn: int | None = None
    # When True, the task must not be held (held_at unset): a send to a paused task fails.
    not_held: bool = False


class RetryLimitReached(Exception):
    """A rejection found the task at its retry limit: the caller fails it instead
    (`reject_exhausted`). Never reaches an API caller."""


@dataclass(frozen=True)
class Outcome:
    """What a transition did: `changed` is False for a harmless repeat."""

    changed: bool
    task: Mapping[str, Any] | None = None


def start(cell_id: str, now_ns: int, *, owner: str | None = None,
          unprivileged: bool = False) -> Transition:
    """Pending → Running on a cell; the cell is also kept as the task's `node`. A task
    backing off after a failed attempt starts only once its retry_at has passed. A node's
    cell starts only the tasks it may run (`owner`, `unprivileged`: see NodeRights)."""
    return Transition(
        "start",
        frozenset({State.PENDING}),
        State.RUNNING,
        {"cell_id": cell_id, "node": cell_id, "started_at": now_ns, "updated_at": now_ns},
        not_before=now_ns,
        owner=owner,
        unprivileged=unprivileged,
    )


def restricted(transition: Transition, *, owner: str | None,
               unprivileged: bool = False) -> Transition:
    """`transition` allowed only on `owner`'s tasks (and unprivileged ones): what a node's
    cell may do."""
    return replace(transition, owner=owner, unprivileged=unprivileged)


# What deciding and writing a retry reads of a task.
RETRY_FIELDS = frozenset({"retries", "retried", "cell_id", "started_at"})


def retries_left(task: Mapping[str, Any]) -> bool:
    return int(task.get("retried", 0)) < int(task.get("retries", 0))


def retry_delay_s(task: Mapping[str, Any]) -> int:
    """How long the task's next attempt waits: 2^n s once its n-th attempt failed."""
    return 2 ** (int(task.get("retried", 0)) + 1)


def retry(
    task: Mapping[str, Any],
    failure_reason: str,
    now_ns: int,
    *,
    cell_id: str | None,
    seen_updated_at: int | None = None,
    attempt_extra: Mapping[str, Any] | None = None,
    updates: Mapping[str, Any] | None = None,
) -> Transition:
    """Running → Pending: a failed attempt of a task with retries left. The attempt is kept in
    `attempts` (with the runtime's `attempt_extra`: a job's exit code and outputs); the task
    runs again as a new execution after 2^n seconds (n: attempts failed so far), with
    `updates` (a job's next execution id). Only from the running cell (or, for convergence,
    unchanged since it was read), and only once per attempt (the retried count must be the
    one read)."""
    retried = int(task.get("retried", 0))
    attempt = {
        **(attempt_extra or {}),
        "attempt": retried + 1,
        "cell_id": task.get("cell_id", ""),
        "started_at": task.get("started_at", 0),
        "finished_at": now_ns,
        "failure_reason": cap_reason(failure_reason),
    }
    return Transition(
        "retry",
        frozenset({State.RUNNING}),
        State.PENDING,
        {
            **(updates or {}),
            "cell_id": "",
            "retry_at": now_ns + retry_delay_s(task) * SECOND_NS,
            "updated_at": now_ns,
        },
        cell_id=cell_id,
        increments={"retried": 1},
        updated_at=seen_updated_at,
        retried=retried,
        appends={"attempts": [attempt]},
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


def launched(cell_id: str, container_cell: str, now_ns: int,
             fields: Mapping[str, Any]) -> Transition:
    """A job's container was started: the task moves from the executor's cell to the cell of
    this one launch (`container_cell`, one per execution), so an event of an earlier launch
    can never complete a later one. Only from the executor's cell; the container's end is
    told by its event, as a completion from `container_cell`."""
    return Transition(
        "launched",
        frozenset({State.RUNNING}),
        State.RUNNING,
        {**fields, "cell_id": container_cell, "node": container_cell, "updated_at": now_ns},
        cell_id,
    )


def annotate(cell_id: str, fields: Mapping[str, Any], now_ns: int) -> Transition:
    """A running container's state as its back-end reports it, or a stop asked of it: not a
    move, and only on the cell of that launch (like `progress`)."""
    return Transition("annotate", frozenset({State.RUNNING}), State.RUNNING,
                      {**fields, "updated_at": now_ns}, cell_id)


def heartbeat(cell_id: str, now_ns: int) -> Transition:
    """A running cell says it is alive: updated_at moves, so convergence leaves the task."""
    return Transition(
        "heartbeat", frozenset({State.RUNNING}), State.RUNNING, {"updated_at": now_ns}, cell_id
    )


def hold(cell_id: str, now_ns: int) -> Transition:
    """Running → Pending, held: the cell that just started the task found its function
    paused, so the task waits, unstarted, until the function is resumed (GreenCloud's
    togglePause). Only from that cell; held_at says since when."""
    return Transition(
        "hold",
        frozenset({State.RUNNING}),
        State.PENDING,
        {"cell_id": "", "held_at": now_ns, "updated_at": now_ns},
        cell_id,
    )


def release(now_ns: int) -> Transition:
    """Pending and held → Pending: the function was resumed. Its wait for a start (and the
    Pending expiry) counts from now, as if it had just been created (retry_at)."""
    return Transition(
        "release",
        frozenset({State.PENDING}),
        State.PENDING,
        {"held_at": None, "retry_at": now_ns, "updated_at": now_ns},
        held=True,
    )


# --- conversations (Coder's agent tasks: services/agenttasks.py) ---------------------------
# A conversation is one task record whose attempts are its turns. Between turns the task is
# Completed (nothing runs, nothing is billed); a send moves it on to its next turn, Pending
# again, and it is dispatched like any task. Pause and resume only mark a finished turn held.

# What a new turn clears of the previous one (records leave defaults out: None removes).
TURN_RESET = ("first_completed_at", "failure_reason", "result", "response_status",
              "response_headers", "response_body", "response_base64", "response_key",
              "stdout", "stderr", "stdout_key", "stderr_key", "stdout_dropped",
              "stderr_dropped", "duration_ms", "progress", "started_at", "rejection_reason")


def next_turn(turn: int, now_ns: int, updates: Mapping[str, Any]) -> Transition:
    """Completed → Pending: turn `turn` has ended and the conversation goes on with turn + 1
    and its input (`updates`: where the turn's input is). Only from that very turn, and
    only while the task is not held (paused). Its wait for a start and the Pending expiry
    count from now (retry_at), as for a released task."""
    cleared = dict.fromkeys(TURN_RESET)
    return Transition(
        "next_turn",
        frozenset({State.COMPLETED}),
        State.PENDING,
        {**cleared, "failed": None, "cell_id": "", **updates, "turn": turn + 1,
         "turn_at": now_ns, "retry_at": now_ns, "updated_at": now_ns},
        turn=turn,
        not_held=True,
    )


def hold_turn(turn: int, now_ns: int) -> Transition:
    """Completed → Completed, held: a conversation paused between turns (Coder's pause).
    Only while turn `turn` is the finished one and the task is not held already."""
    return Transition("hold_turn", frozenset({State.COMPLETED}), State.COMPLETED,
                      {"held_at": now_ns, "updated_at": now_ns}, turn=turn, not_held=True)


def release_turn(now_ns: int, updates: Mapping[str, Any] | None = None) -> Transition:
    """Completed and held → Completed: a paused conversation resumed; `updates` are what the
    pause allowed to change (the initial prompt)."""
    return Transition("release_turn", frozenset({State.COMPLETED}), State.COMPLETED,
                      {**(updates or {}), "held_at": None, "updated_at": now_ns}, held=True)


def edit_held(turn: int, now_ns: int, updates: Mapping[str, Any]) -> Transition:
    """A paused conversation's fields changed while it stays held (Coder's input PATCH)."""
    return Transition("edit_held", frozenset({State.COMPLETED}), State.COMPLETED,
                      {**updates, "updated_at": now_ns}, held=True, turn=turn)


def report_state(cell_id: str, state_json: str, now_ns: int) -> Transition:
    """The running function reported its state (working, idle, complete, failed): kept as
    JSON text; not a move, and only from its cell (like `progress`)."""
    return Transition("report_state", frozenset({State.RUNNING}), State.RUNNING,
                      {"state_json": state_json, "updated_at": now_ns}, cell_id)


def expire(now_ns: int) -> Transition:
    """Convergence: a task Pending too long fails; only while it is still Pending."""
    updates = _completion(True, EXPIRED_REASON, "", now_ns)
    return Transition("fail", frozenset({State.PENDING}), State.COMPLETED, updates)


def cell_lost(seen_updated_at: int, now_ns: int) -> Transition:
    """Convergence: a Running task whose cell stopped heartbeating fails, only if it is still
    Running with the updated_at the converger saw (a fresh heartbeat wins)."""
    updates = _completion(True, CELL_LOST_REASON, "", now_ns)
    return Transition(
        "fail", frozenset({State.RUNNING}), State.COMPLETED, updates, updated_at=seen_updated_at
    )


def node_disabled_reason(cell_id: str) -> str:
    return f"node {cell_id} was disabled before completion"


def node_disabled(cell_id: str, now_ns: int) -> Transition:
    """Convergence: a task Running on a node its owner disabled fails (its cell's token is
    refused from then on, so no completion will come), only while still Running there."""
    updates = _completion(True, node_disabled_reason(cell_id), "", now_ns)
    return Transition("fail", frozenset({State.RUNNING}), State.COMPLETED, updates,
                      cell_id=cell_id)


def resolving(now_ns: int) -> Transition:
    """Completed → Resolving while a completion callback is delivered."""
    return Transition(
        "resolving", frozenset({State.COMPLETED}), State.RESOLVING, {"updated_at": now_ns}
    )


def demote(seen_updated_at: int, now_ns: int) -> Transition:
    """Convergence: Resolving → Completed when the callback stalled (its Lambda gave up or
    died), only if nobody touched the task since it was read; the callback is then sent again."""
    return Transition(
        "demote",
        frozenset({State.RESOLVING}),
        State.COMPLETED,
        {"updated_at": now_ns},
        updated_at=seen_updated_at,
    )


def expire_completed() -> Transition:
    """Convergence: a Completed task past the completed expiry is removed (BBS step 5)."""
    return Transition("delete", frozenset({State.COMPLETED}), State.COMPLETED, removes=True)


def reject(reason: str, now_ns: int, max_retries: int = MAX_TASK_RETRIES) -> Transition:
    """Pending or Running → Pending with one rejection more, kept on its cell_id, while the
    count before this rejection is below `max_retries`; at the limit the write's condition
    fails and `explain` raises RetryLimitReached, so the caller applies `reject_exhausted`."""
    return Transition(
        "reject",
        UNFINISHED,
        State.PENDING,
        {"rejection_reason": cap_reason(reason), "updated_at": now_ns},
        max_rejections=max_retries,
        increments={"rejection_count": 1},
    )


def reject_exhausted(reason: str, now_ns: int) -> Transition:
    """The rejection past the retry limit: counted, and the task fails with its reason. No
    count condition: a count only grows, so once at the limit it stays there."""
    updates = {**_completion(True, reason, "", now_ns), "rejection_reason": cap_reason(reason)}
    return Transition(
        "reject", UNFINISHED, State.COMPLETED, updates, increments={"rejection_count": 1}
    )


def delete() -> Transition:
    """Resolving → removed. BBS words a refused delete as a transition to Resolving
    ("Cannot transition from Completed to Resolving"), hence the target state."""
    return Transition("delete", frozenset({State.RESOLVING}), State.RESOLVING, removes=True)


def check(transition: Transition, task: Mapping[str, Any]) -> None:
    """Raise the BBS error for applying `transition` to `task` as it is, or return if allowed."""
    if transition.owner is not None and task.get("owner") != transition.owner:
        raise NotFound("task not found")  # another owner's task: as if it did not exist
    if transition.unprivileged and (task.get("capabilities") or {}).get("privileged"):
        raise InvalidRequest("the task needs privileged capabilities, which this node does not"
                             " offer")
    current = State(task["state"])
    on_cell = task.get("cell_id", "")
    if current not in transition.from_states and transition.action == "reject":
        # BBS answers a rejection of a finished task as a bad request, not a transition error.
        raise InvalidRequest(f"Invalid request: cannot reject a {current.value} task")
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
    if transition.updated_at is not None and task.get("updated_at") != transition.updated_at:
        raise InvalidStateTransition("the task changed concurrently; try again")
    if transition.retried is not None and task.get("retried", 0) != transition.retried:
        raise InvalidStateTransition("the task changed concurrently; try again")
    if transition.held and not task.get("held_at"):
        raise InvalidStateTransition("the task is not held")
    if transition.not_held and task.get("held_at"):
        raise InvalidStateTransition("the task is held")
    if transition.turn is not None and task.get("turn", 0) != transition.turn:
        raise InvalidStateTransition("the task changed concurrently; try again")
    waits_until = task.get("retry_at", 0)
    if transition.not_before is not None and waits_until > transition.not_before:
        raise InvalidStateTransition(f"the task backs off until {waits_until} (retry_at)")
    limit = transition.max_rejections
    if limit is not None and task.get("rejection_count", 0) >= limit:
        raise RetryLimitReached(f"rejected {task.get('rejection_count', 0)} times, limit {limit}")


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
    if transition.removes:
        return Outcome(True, None)
    added = {k: task.get(k, 0) + v for k, v in transition.increments.items()}
    appended = {k: [*task.get(k, []), *v] for k, v in transition.appends.items()}
    return Outcome(
        True,
        {**task, **transition.updates, **added, **appended, "state": transition.to_state.value},
    )
