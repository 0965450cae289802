"""The Cell API's tasks (reference/bbs.md): desire, list, read, and every transition a client
or a cell asks for, over the same task records and lifecycle as the rest of the platform.

Who may do what: a user desires, cancels, resolves and deletes their own tasks and reads
only those (another user's guid is ResourceNotFound, as an unknown one); cells start, reject,
fail and complete, each only as its own node and on the tasks that node may run
(services/nodes.py): a shared node's cell (and an admin) reads every task, since it must see
what to place; a user's node reads and acts on its owner's tasks alone. Route scopes are
checked by the handlers; visibility and node rights here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from taskfn import ids, lifecycle, userjson, wiring
from taskfn.errors import Forbidden, InvalidRequest, NotFound, ResourceExists, Unprocessable
from taskfn.lifecycle import SECOND_NS
from taskfn.models import Caller, FunctionRecord, Scope, TaskRecord, expiry, now_ns
from taskfn.services.nodes import UNLIMITED, NodeRights, NodeService
from taskfn.services.ownership import owned
from taskfn.settings import Settings, get_settings
from taskfn.stores.idempotency import IdempotencyKeys, check_key, fingerprint
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import FunctionStore
from taskfn.stores.tasks import TaskStore

# A task is one DynamoDB item (400 KB at most): its definition as stored keeps well below.
DEFINITION_MAX_BYTES = 192 * 1024
BUILT_IN_HINT = (
    "the built-in executor runs taskfn functions: set task_definition.function_id, "
    "or placement_tags for an external cell"
)


@dataclass(frozen=True)
class DesiredTask:
    """A DesireTask request, checked by the adapter."""

    task_guid: str
    domain: str
    # BBS's TaskDefinition fields kept as given, minus those below.
    definition: dict[str, Any] = field(default_factory=dict)
    placement_tags: tuple[str, ...] = ()
    completion_callback_url: str = ""
    annotation: str = ""
    # taskfn's extension: the caller's function the built-in executor runs, and its input.
    function_id: str = ""
    input: Any = None
    # Attempts after a failed one (taskfn's extension).
    retries: int = 0


def sees_all(caller: Caller) -> bool:
    """Shared nodes' cells place any owner's tasks, so they (and admins) read them all; a
    user's node, like its owner, reads only the owner's."""
    return caller.scope is Scope.ADMIN or (caller.scope is Scope.CELL and caller.shared)


class CellService:
    def __init__(
        self, tasks: TaskStore, functions: FunctionStore, queue: TaskQueue, settings: Settings,
        nodes: NodeService | None = None,
    ):
        self.tasks = tasks
        self.functions = functions
        self.queue = queue
        self.settings = settings
        self.keys = IdempotencyKeys(tasks.table)
        self.nodes = nodes or NodeService.from_env()

    @classmethod
    def from_env(cls) -> CellService:
        return cls(wiring.tasks(), wiring.functions(), wiring.task_queue(), get_settings())

    def acting(self, caller: Caller, cell_id: str | None = None) -> NodeRights:
        """What `caller` may do as cell `cell_id` (its own node's, when the route names no
        cell): Forbidden for another node's cell id or a disabled node."""
        if cell_id is None:
            cell_id = caller.node
        return self.nodes.rights(caller, cell_id)

    # --- desire and read --------------------------------------------------------------

    def desire(self, caller: Caller, desired: DesiredTask,
               idempotency_key: str | None = None) -> TaskRecord:
        """A new Pending task. Without placement tags it goes to the task queue, like any
        other task, for the built-in executor; with them it waits for an external cell.

        With an idempotency key, a retry of the same desire within 24 hours succeeds with
        the first one's task (not ResourceExists), and the key reused for another desire is
        422."""
        stored = len(userjson.dumps(desired.definition).encode())
        if stored > DEFINITION_MAX_BYTES:  # as kept, not as sent: "1e15" is kept longer
            raise InvalidRequest(
                f"task_definition is {stored} bytes as stored; at most {DEFINITION_MAX_BYTES}")
        now = now_ns()
        if idempotency_key is not None:
            request = fingerprint(json.dumps(asdict(desired), sort_keys=True, default=str))
            claim = self.keys.claim(caller.user, "bbs.desire", check_key(idempotency_key),
                                    request, desired.task_guid, now // SECOND_NS)
            if not claim.same:
                raise Unprocessable("Idempotency-Key already used for another request",
                                    "a key stands for one request for 24 hours")
            existing = None if claim.first else self._own(caller, desired.task_guid)
            if existing is not None:
                return existing
            if claim.settled:  # desired once, deleted since: a retry desires nothing again
                raise NotFound("the task of this Idempotency-Key was deleted")
        task = TaskRecord(
            task_guid=desired.task_guid,
            domain=desired.domain,
            owner=caller.user,
            task_definition=desired.definition,
            placement_tags=list(desired.placement_tags),
            completion_callback_url=desired.completion_callback_url,
            annotation=desired.annotation,
            retries=desired.retries,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, self.settings.task_retention_days),
        )
        if desired.function_id or not desired.placement_tags:
            task = self._with_function(caller, task, desired)
        if desired.input is not None:
            task = task.model_copy(update={"input": self._input(desired.input)})
        if not self.tasks.put_new(task):
            existing = self._own(caller, task.task_guid) if idempotency_key else None
            if existing is not None:  # two retries of one keyed desire raced: one wrote it
                return existing
            raise ResourceExists("the requested resource already exists")
        if idempotency_key is not None:
            self.keys.settle(caller.user, "bbs.desire", idempotency_key)
        if not task.placement_tags:
            self.queue.send_after_write(task.task_guid)
        return task

    def _own(self, caller: Caller, task_guid: str) -> TaskRecord | None:
        task = self.tasks.get(task_guid, consistent=True)
        return task if task is not None and task.owner == caller.user else None

    def _with_function(self, caller: Caller, task: TaskRecord, desired: DesiredTask) -> TaskRecord:
        """The function's code fixed into the task, as a GreenCloud create does."""
        if not desired.function_id:
            raise InvalidRequest(BUILT_IN_HINT)
        try:
            function: FunctionRecord = owned(
                self.functions.get, desired.function_id, caller, "function"
            )
        except NotFound as error:
            raise InvalidRequest("task_definition.function_id: function not found",
                                 BUILT_IN_HINT) from error
        if function.paused:
            raise InvalidRequest("task_definition.function_id: function is paused")
        if not function.build_id:
            raise InvalidRequest("task_definition.function_id: function has no code yet")
        return task.model_copy(update=function.run_fields())

    def _input(self, value: Any) -> dict[str, Any]:
        """The function's event body. Kept in the record, so bounded by the inline size."""
        size = len(userjson.dumps(value).encode())
        if size > self.settings.inline_input_bytes:
            raise InvalidRequest(
                f"task_definition.input is at most {self.settings.inline_input_bytes} bytes of"
                " JSON"
            )
        return {"body": value, "query": {}}

    def get(self, caller: Caller, task_guid: str) -> TaskRecord:
        """The task; one past its retention is gone (DynamoDB deletes it lazily)."""
        if sees_all(caller):
            task = self.tasks.get(task_guid) if ids.is_task_guid(task_guid) else None
            if task is None:
                raise NotFound("task not found")
        else:
            task = owned(self.tasks.get, task_guid, caller, "task", valid=ids.is_task_guid)
        if task.expired(now_ns()):
            raise NotFound("task expired", f"tasks are kept {self.settings.task_retention_days}"
                           " days")
        return task

    def list(self, caller: Caller, *, domain: str, cell_id: str = "") -> list[TaskRecord]:
        """Tasks of a domain, filters AND-ed, oldest first. A domain is required: tasks are
        indexed by domain, and a list is always one Query per page, never a scan. Every task
        that still exists, as BBS answers: bounded because convergence deletes Completed ones
        after the completed expiry, and Pending ones are read first, so finished tasks never
        hide new work from a cell."""
        if not domain:
            raise InvalidRequest(
                "domain is required", "tasks are listed by domain; cell_id filters within it"
            )
        found = self.tasks.list_by_domain(
            domain,
            bound=self.settings.cell_list_max,
            cell_id=cell_id or None,
            owner=None if sees_all(caller) else caller.user,
        )
        now = now_ns()
        return [task for task in found if not task.expired(now)]

    def pending(
        self, caller: Caller, domain: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        """A cell's view of the work of a domain: one page of its Pending tasks (every
        owner's) in the order they became Pending, and the next page's cursor; its cost is the
        pending work's, however many finished tasks the domain holds."""
        if caller.scope is Scope.USER:
            raise Forbidden("only cells list a domain's pending work")
        if not domain:
            raise InvalidRequest("domain is required")
        limit = max(1, min(limit, self.settings.list_page_max))
        owner = None if sees_all(caller) else caller.user
        return self.tasks.list_pending(domain, limit=limit, cursor=cursor, owner=owner)

    # --- a client's transitions (owner rules) -----------------------------------------

    def cancel(self, caller: Caller, task_guid: str) -> None:
        """Pending or Running → Completed, failed, "task was cancelled"."""
        task = self._visible(caller, task_guid)
        self.tasks.apply(task_guid, lifecycle.cancel(now_ns()), **_hints(task))

    def resolving(self, caller: Caller, task_guid: str) -> None:
        """Completed → Resolving (a callback is being delivered)."""
        self._visible(caller, task_guid)
        self.tasks.apply(task_guid, lifecycle.resolving(now_ns()))

    def delete(self, caller: Caller, task_guid: str) -> None:
        """Resolving → removed."""
        self._visible(caller, task_guid)
        self.tasks.remove(task_guid, lifecycle.delete())

    def _visible(self, caller: Caller, task_guid: str) -> TaskRecord | None:
        """Ownership costs a read for users (the task read, for the write's hints); the write
        after it stays conditional on state."""
        if not sees_all(caller):
            return self.get(caller, task_guid)
        return None

    # --- a cell's transitions: one conditional write each -----------------------------

    def start(self, task_guid: str, cell_id: str, rights: NodeRights = UNLIMITED) -> bool:
        """should_start: False, without an error, when it already runs on this cell. A node's
        cell starts only what its node may run (`rights`, part of the write's condition)."""
        transition = lifecycle.start(cell_id, now_ns(), owner=rights.owner,
                                     unprivileged=rights.unprivileged)
        return self.tasks.apply(task_guid, transition).changed

    def complete(
        self, task_guid: str, cell_id: str, *, failed: bool, failure_reason: str, result: str,
        rights: NodeRights = UNLIMITED,
    ) -> None:
        """Running → Completed from its cell; a failure of a task with retries left puts it
        back to Pending as a new attempt instead (a read first, on failures only)."""
        if failed:
            # Strongly consistent: a task that failed right after its start must be seen
            # Running on this cell, or its retries would be lost.
            task = self.tasks.get(task_guid, consistent=True)
            attempt = task.model_dump(include=lifecycle.RETRY_FIELDS) if task else {}
            if task is not None and lifecycle.retries_left(attempt) and task.cell_id == cell_id:
                retry = lifecycle.retry(
                    attempt,
                    failure_reason,
                    now_ns(),
                    cell_id=cell_id,
                )
                self.tasks.apply(task_guid, lifecycle.restricted(retry, owner=rights.owner))
                if not task.placement_tags:
                    delay = lifecycle.retry_delay_s(attempt)
                    self.queue.send_after_write(task_guid, delay_s=delay)
                return
        transition = lifecycle.complete(
            cell_id, now_ns(), failed=failed, failure_reason=failure_reason, result=result
        )
        transition = lifecycle.restricted(transition, owner=rights.owner)
        self.tasks.apply(task_guid, transition, desired=True)

    def heartbeat(self, task_guid: str, cell_id: str, rights: NodeRights = UNLIMITED) -> None:
        """taskfn's extension: the task still runs on this cell, so convergence leaves it.
        An error tells the cell to stop: the task was cancelled, failed or moved on."""
        transition = lifecycle.heartbeat(cell_id, now_ns())
        self.tasks.apply(task_guid, lifecycle.restricted(transition, owner=rights.owner))

    def fail(self, task_guid: str, failure_reason: str, rights: NodeRights = UNLIMITED) -> None:
        transition = lifecycle.fail(failure_reason, now_ns())
        self.tasks.apply(task_guid, lifecycle.restricted(transition, owner=rights.owner),
                         desired=True)

    def reject(self, task_guid: str, rejection_reason: str,
               rights: NodeRights = UNLIMITED) -> None:
        """Back to Pending with one rejection more; past the retry limit, failed. The first
        write is conditional on the count, so two racing rejections cannot both retry."""
        now = now_ns()
        retry = lifecycle.reject(rejection_reason, now, self.settings.max_task_retries)
        try:
            self.tasks.apply(task_guid, lifecycle.restricted(retry, owner=rights.owner))
        except lifecycle.RetryLimitReached:
            exhausted = lifecycle.reject_exhausted(rejection_reason, now)
            self.tasks.apply(task_guid, lifecycle.restricted(exhausted, owner=rights.owner),
                             desired=True)


def _hints(task: TaskRecord | None) -> dict[str, bool]:
    """What a completing write may assume of a task it read; unread, that it is the Cell
    API's (a guess: a wrong one costs a second write, never a wrong index)."""
    if task is None:
        return {"desired": True}
    return {"has_callback": bool(task.completion_callback_url), "desired": task.desired}
