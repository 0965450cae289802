"""Convergence (reference/bbs.md), steps 1-6: what fixes tasks that nobody else will.

A pass reads the open tasks through the sparse open index (keys, every shard merged oldest
first), then the tasks themselves (BatchGetItem), decides one step per task from its state and
times alone (`step_for`, pure), and applies the steps in BBS's order. Every change is a
conditional write, so a pass racing a cell, another pass or a user never undoes their work: a
lost race is counted, not an error.

Steps 4-6 concern only tasks with a completion callback or desired through the Cell API: they
stay on the open index until deleted, and step 5 deletes them after the completed expiry as
BBS does (step 6 only sends callbacks). GreenCloud's tasks leave it at completion and are
never deleted here: their results must stay readable (until their retention ends).

With more open tasks than the bound, a pass takes the oldest across all shards, exactly as
one unsharded index would: they are the ones whose timeouts run out first, and which tasks a
truncated pass sees must not depend on how the hash spread them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import BUILT_IN_CELL_PREFIX, CONTAINER_CELL, TaskRecord, now_ns
from taskfn.settings import Settings, get_settings
from taskfn.stores.nodes import NodeStore
from taskfn.stores.queue import TaskQueue
from taskfn.stores.tasks import DOMAIN_KEY, TaskStore

logger = logging.getLogger(__name__)

# What a decision needs; the rest of a task (its input above all) stays in the table.
# DOMAIN_KEY says which are Cell API tasks (to delete once expired) without their definitions.
# How long past its timeout a job's run may still be told ended by its event.
CONTAINER_GRACE_S = 120
READ_ATTRIBUTES = (
    "task_guid", "owner", "state", "created_at", "updated_at", "placement_tags", "cell_id",
    "first_completed_at", "completion_callback_url", "started_at", "retries", "retried",
    "retry_at", "timeout", DOMAIN_KEY,
)


class Step(StrEnum):
    """The steps in the order a pass applies them."""

    EXPIRE = "expired"
    DISPATCH = "dispatched"
    NODE_DISABLED = "node_disabled"
    CELL_LOST = "cell_lost"
    DEMOTE = "demoted"
    DELETE = "deleted"
    KICK = "kicked"


ORDER = (Step.EXPIRE, Step.DISPATCH, Step.NODE_DISABLED, Step.CELL_LOST, Step.DEMOTE,
         Step.DELETE, Step.KICK)


def due_for_dispatch(waited_s: float, grace_s: float, period_s: float) -> bool:
    """Whether a Pending task that has waited `waited_s` is sent to the queue again in this
    pass: when its wait crossed grace·2^k (k = 0, 1, …) since the previous pass. A task lost
    between its write and its send goes out one pass after the grace; a task merely waiting in
    a long queue is sent again a few times (at 30, 60, 120, 240 … s), not at every pass."""
    if waited_s <= grace_s:
        return False
    if grace_s <= 0:
        return True
    crossed = grace_s * 2 ** math.floor(math.log2(waited_s / grace_s))
    return waited_s - period_s < crossed


def step_for(task: TaskRecord, now: int, settings: Settings,
             disabled_cells: frozenset[str] = frozenset()) -> Step | None:
    """The one step convergence takes for `task` at `now` (ns), or None. `disabled_cells`:
    the cell ids of disabled nodes among the Running tasks'."""
    if task.state == State.PENDING:
        # A retried task waits from its retry_at: its attempts may have run longer than that.
        if now - max(task.created_at, task.retry_at) > settings.pending_expiry_s * SECOND_NS:
            return Step.EXPIRE
        waited_s = (now - task.updated_at) / SECOND_NS
        due = due_for_dispatch(waited_s, settings.dispatch_grace_s, settings.converger_period_s)
        backing_off = task.retry_at > now
        # Tagged tasks are for external cells, which list their domain themselves.
        if due and not backing_off and not task.placement_tags:
            return Step.DISPATCH
        return None
    if task.state == State.RUNNING and task.cell_id in disabled_cells:
        return Step.NODE_DISABLED
    stale = now - task.updated_at > settings.cell_timeout_s * SECOND_NS
    if task.state == State.RUNNING and task.cell_id.startswith(CONTAINER_CELL):
        # A job's container does not heartbeat: its back-end's event ends it, and its timeout
        # watch stops it. Only one that outlives both by the grace has lost its event.
        lost_after = task.timeout + CONTAINER_GRACE_S + settings.cell_timeout_s
        return Step.CELL_LOST if now - task.started_at > lost_after * SECOND_NS else None
    # Every cell heartbeats while it runs a task (the built-in executor by a write, an external
    # cell through /v1/tasks/heartbeat): silence past the cell timeout means the cell is gone.
    if task.state == State.RUNNING and stale:
        return Step.CELL_LOST
    if not (task.completion_callback_url or task.desired):
        return None  # GreenCloud's: its result stays readable
    kicked = now - task.updated_at > settings.kick_duration_s * SECOND_NS
    if task.state == State.RESOLVING and kicked:
        return Step.DEMOTE
    if task.state == State.COMPLETED:
        if now - task.first_completed_at > settings.completed_expiry_s * SECOND_NS:
            return Step.DELETE
        if kicked and task.completion_callback_url:
            return Step.KICK
    return None


@dataclass
class Report:
    """Counts of one pass: `lost_races` are writes whose condition no longer held (the task
    moved on meanwhile); `truncated` says open tasks were left for the next pass."""

    open: int = 0
    expired: int = 0
    dispatched: int = 0
    node_disabled: int = 0  # Running on a disabled node: failed (or retried elsewhere)
    cell_lost: int = 0
    retried: int = 0  # lost cells whose task had retries left: Pending again
    demoted: int = 0
    deleted: int = 0
    kicked: int = 0
    lost_races: int = 0
    dispatch_failures: int = 0
    kick_failures: int = 0
    truncated: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class Converger:
    def __init__(
        self,
        tasks: TaskStore,
        queue: TaskQueue,
        settings: Settings,
        now: Callable[[], int] = now_ns,
        callbacks: TaskQueue | None = None,
        nodes: NodeStore | None = None,
    ):
        self.tasks = tasks
        self.nodes = nodes or NodeStore(tasks.table)
        self.queue = queue
        self.settings = settings
        self.now = now
        # The callback queue, for step 6 (a demoted task's callback comes from the stream).
        self.callbacks = callbacks

    @classmethod
    def from_env(cls) -> Converger:
        return cls(wiring.tasks(), wiring.task_queue(), get_settings(),
                   callbacks=wiring.callback_queue())

    def run(self) -> Report:
        """One pass over at most `converger_max_tasks` open tasks, oldest first across every
        shard; `truncated` when more were left for the next pass. The counts of the tasks it
        finishes are written once per function at the end (FunctionMetrics.gathered)."""
        if self.tasks.metrics is None:
            return self._run()
        with self.tasks.metrics.gathered():
            return self._run()

    def _run(self) -> Report:
        report = Report()
        open_tasks, report.truncated = self.tasks.open_tasks(
            bound=self.settings.converger_max_tasks, attributes=READ_ATTRIBUTES
        )
        report.open = len(open_tasks)
        now = self.now()
        disabled = self._disabled_cells(open_tasks)
        chosen: dict[Step, list[TaskRecord]] = {step: [] for step in ORDER}
        for task in open_tasks:
            step = step_for(task, now, self.settings, disabled)
            if step is not None:
                chosen[step].append(task)
        for task in chosen[Step.EXPIRE]:
            if self._write(task, lifecycle.expire(now)):
                report.expired += 1
            else:
                report.lost_races += 1
        to_send = [task.task_guid for task in chosen[Step.DISPATCH]]
        failed = self.queue.send_many(to_send) if to_send else []
        report.dispatched, report.dispatch_failures = len(to_send) - len(failed), len(failed)
        if failed:
            logger.warning("converger could not send %d tasks, e.g. %s", len(failed), failed[0])
        for task in chosen[Step.NODE_DISABLED]:
            self._lose_cell(task, now, report, node_disabled=True)
        for task in chosen[Step.CELL_LOST]:
            self._lose_cell(task, now, report)
        # A demoted task is Completed again: the stream queues its callback.
        for task in chosen[Step.DEMOTE]:
            if self._write(task, lifecycle.demote(task.updated_at, now)):
                report.demoted += 1
            else:
                report.lost_races += 1
        for task in chosen[Step.DELETE]:
            if self._remove(task.task_guid):
                report.deleted += 1
            else:
                report.lost_races += 1
        self._kick([task.task_guid for task in chosen[Step.KICK]], report)
        if report.truncated:
            logger.warning("converger stopped at %d open tasks", report.open)
        logger.info("converger pass: %s", report.as_dict())
        return report

    def _kick(self, task_ids: list[str], report: Report) -> None:
        """Step 6: callbacks of Completed tasks nobody resolved, queued again."""
        callbacks = self.callbacks
        if not task_ids:
            return
        if callbacks is None:
            logger.warning("no callback queue: %d callbacks not sent again", len(task_ids))
            report.kick_failures += len(task_ids)
            return
        failed = callbacks.send_many(task_ids)
        report.kicked, report.kick_failures = len(task_ids) - len(failed), len(failed)

    def _disabled_cells(self, open_tasks: list[TaskRecord]) -> frozenset[str]:
        """The cell ids of disabled nodes Running tasks are on: one BatchGetItem of the
        external cells' nodes (the built-in executor's cells are none)."""
        cells = sorted({task.cell_id for task in open_tasks
                        if task.state == State.RUNNING and task.cell_id
                        and not task.cell_id.startswith(BUILT_IN_CELL_PREFIX)})
        if not cells:
            return frozenset()
        return frozenset(node.hash for node in self.nodes.get_many(cells) if node.disabled)

    def _lose_cell(self, task: TaskRecord, now: int, report: Report, *,
                   node_disabled: bool = False) -> None:
        """Step 3: the silent task fails, or, with retries left, goes back to Pending as a new
        attempt after its back-off (sent to the queue with that delay when untagged). A task
        on a disabled node likewise, conditional on its cell rather than its silence."""
        attempt = task.model_dump(include=lifecycle.RETRY_FIELDS)
        counted = "node_disabled" if node_disabled else "cell_lost"
        if not lifecycle.retries_left(attempt):
            final = (lifecycle.node_disabled(task.cell_id, now) if node_disabled
                     else lifecycle.cell_lost(task.updated_at, now))
            if self._write(task, final):
                setattr(report, counted, getattr(report, counted) + 1)
            else:
                report.lost_races += 1
            return
        if node_disabled:
            retry = lifecycle.retry(attempt, lifecycle.node_disabled_reason(task.cell_id), now,
                                    cell_id=task.cell_id)
        else:
            retry = lifecycle.retry(attempt, lifecycle.CELL_LOST_REASON, now, cell_id=None,
                                    seen_updated_at=task.updated_at)
        if not self._write(task, retry):
            report.lost_races += 1
            return
        report.retried += 1
        if not task.placement_tags:
            self.queue.send_after_write(task.task_guid, delay_s=lifecycle.retry_delay_s(attempt))

    def _remove(self, task_id: str) -> bool:
        """Step 5: delete an expired Completed task (with a callback, or a Cell API task);
        False when it moved on (Resolving)."""
        try:
            return self.tasks.remove(task_id, lifecycle.expire_completed()).changed
        except (InvalidStateTransition, NotFound) as error:
            logger.info("converger left task %s: %s", task_id, error.message)
            return False

    def _write(self, task: TaskRecord, transition: lifecycle.Transition) -> bool:
        """Apply one convergence write; False when the task moved on since it was read."""
        has_callback = bool(task.completion_callback_url)
        try:
            return self.tasks.apply(
                task.task_guid, transition, has_callback=has_callback, desired=task.desired
            ).changed
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
            logger.info("converger left task %s: %s", task.task_guid, error.message)
            return False
