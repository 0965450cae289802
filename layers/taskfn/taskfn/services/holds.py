"""Paused functions (GreenCloud's togglePause): their queued tasks wait, and run once the
function is resumed; nothing is lost either way.

A pause writes only the function. The executor, having started a task (one conditional
write, as ever), checks whether its function is paused; if so it holds the task: a marker
beside the function, then Running → Pending held, off the open index so that convergence
neither expires nor dispatches it. A resume writes the function, then releases every marked
task (Pending again, on the open index, sent to the queue).

The two never miss each other: the executor reads the function again, strongly consistent,
after its hold; a resume reads the markers, strongly consistent, after its write. Whichever
writes last sees the other's write, so a task held across a resume is released by one of them
(a release is conditional: only one of them sends it).
"""

from __future__ import annotations

import logging
import time

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.models import TaskRecord, now_ns
from taskfn.stores.holds import HoldMarkers
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import FunctionStore
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

# How long an executor trusts what it read of a function's pause: a pause takes effect on
# tasks already queued within this long, for one read per function per interval.
PAUSE_CHECK_S = 2.0
SEEN_MAX = 4096  # functions remembered by one warm executor before it forgets them all


class HoldService:
    def __init__(self, tasks: TaskStore, functions: FunctionStore, markers: HoldMarkers,
                 queue: TaskQueue, *, check_s: float = PAUSE_CHECK_S):
        self.tasks = tasks
        self.functions = functions
        self.markers = markers
        self.queue = queue
        self.check_s = check_s
        self._seen: dict[str, tuple[float, bool]] = {}

    @classmethod
    def from_env(cls) -> HoldService:
        return cls(wiring.tasks(), wiring.functions(), HoldMarkers(wiring.table()),
                   wiring.task_queue())

    def paused(self, function_id: str) -> bool:
        """Whether the function is paused, as read at most `check_s` ago."""
        moment = time.monotonic()
        seen = self._seen.get(function_id)
        if seen is None or moment - seen[0] > self.check_s:
            function = self.functions.get(function_id)
            seen = (moment, bool(function and function.paused))
            self._remember(function_id, seen)
        return seen[1]

    def _remember(self, function_id: str, seen: tuple[float, bool]) -> None:
        """A warm executor may see any number of functions: forget them all past SEEN_MAX
        rather than grow without bound (a forgotten one is read again)."""
        if len(self._seen) >= SEEN_MAX:
            self._seen.clear()
        self._seen[function_id] = seen

    def hold(self, task: TaskRecord, cell_id: str) -> bool:
        """Hold a task this cell has just started; False when its function is not paused
        after all (the caller runs it) or the hold was refused (no longer Running here: the
        caller's next write finds out)."""
        function_id, task_id = task.function_id, task.task_guid
        if not self._paused_now(function_id):  # resumed since it was read: run it
            return False
        # The marker first: a cell that dies after it leaves a task Running (which
        # convergence fails as any lost cell's) and a marker a resume clears.
        self.markers.put(function_id, task_id, now_ns())
        try:
            self.tasks.hold(task_id, lifecycle.hold(cell_id, now_ns()))
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
            logger.info("task %s not held: %s", task_id, error.message)
            self.markers.delete(function_id, task_id)
            return False
        if not self._paused_now(function_id):  # resumed (or deleted) meanwhile
            self.release(function_id, task_id)
        else:
            logger.info("task %s held: function %s is paused", task_id, function_id)
        return True

    def _paused_now(self, function_id: str) -> bool:
        """The function's pause as it is now (a strongly consistent read), remembered."""
        function = self.functions.get(function_id, consistent=True)
        paused = bool(function and function.paused)
        self._remember(function_id, (time.monotonic(), paused))
        return paused

    def release(self, function_id: str, task_id: str) -> bool:
        """Pending again and sent; False when it was not held (any more)."""
        try:
            released = self.tasks.release(task_id, lifecycle.release(now_ns())).changed
        except NotFound:
            released = False
        except InvalidStateTransition:
            task = self.tasks.get(task_id, consistent=True)
            if task is not None and task.state is lifecycle.State.RUNNING:
                return False  # its hold is still to come: the marker stays for it
            released = False
        self.markers.delete(function_id, task_id)
        if released:
            try:
                self.queue.send(task_id)
            except (ClientError, BotoCoreError):  # on the open index: convergence sends it
                logger.warning("released task %s not sent", task_id, exc_info=True)
        return released

    def release_function(self, function_id: str) -> int:
        """After a resume (or a delete): every held task of the function; how many."""
        released = 0
        for task_id in list(self.markers.held(function_id)):
            try:
                released += self.release(function_id, task_id)
            except (ClientError, BotoCoreError):  # the others still go; this one's marker stays
                logger.exception("held task %s not released", task_id)
        return released
