"""Triggers: when a task of functionId finishes with the trigger's HTTP status, a task of
nextId runs, with the first task's response body as its body when includeResult is set.

Chained tasks are created from the table's stream (functions/triggers/fire.py), never beside
the completing write: a task finishing is the only change the firing sees, whoever wrote it.
A stream record may come twice, so a child's id is derived from (parent task, trigger) and
its put is conditional: one child per finished task and trigger. A chain counts its depth;
a task at TRIGGER_MAX_DEPTH fires nothing, and the trigger records the stopped chain
(GET /v1/trigger/{id} shows it as stoppedChain), so A → A ends. A chain also has a budget of
tasks in all (TRIGGER_CHAIN_MAX_TASKS, counted beside its first task by a conditional ADD that
remembers each child, so a redelivery is not counted twice): fan-out stays linear.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskfn import ids, wiring
from taskfn.adapters.greencloud import parse_task_body
from taskfn.errors import Conflict, InvalidRequest, NotFound, TaskfnError
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.services.ownership import owned
from taskfn.services.tags import TagService
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.records import FunctionStore
from taskfn.stores.table import from_item
from taskfn.stores.tags import TagRecord
from taskfn.stores.triggers import TriggerRecord, TriggerStore

logger = logging.getLogger(__name__)
DESCRIPTION_MAX = 256
LIST_DEPTH_MAX = 10_000


def child_task_id(parent: TaskRecord, trigger_id: str) -> str:
    """The task a trigger creates for one finished task, the same for every delivery: the
    parent's finish seconds (ids stay time-ordered) and 8 bytes of a hash of both ids."""
    seconds = (parent.first_completed_at or parent.updated_at) // SECOND_NS
    digest = hashlib.sha256(f"{parent.task_guid}#{trigger_id}".encode()).hexdigest()
    return seconds.to_bytes(4, "big").hex() + digest[:16]


def matches(trigger: TriggerRecord, task: TaskRecord) -> bool:
    """A finished task of the trigger's function and owner that answered its status."""
    return (task.state in (State.COMPLETED, State.RESOLVING)
            and task.function_id == trigger.function_id and task.owner == trigger.owner
            and task.response_status == trigger.status)


def newly_finished(records: list[Mapping[str, Any]]) -> list[TaskRecord]:
    """The tasks a stream batch shows entering Completed with a response, each once."""
    found: dict[str, TaskRecord] = {}
    for record in records:
        change = record.get("dynamodb") or {}
        new = from_item(change.get("NewImage") or {})
        old = from_item(change.get("OldImage") or {})
        if new.get("SK") != "TASK" or new.get("state") != State.COMPLETED:
            continue
        if old.get("state") in (State.COMPLETED, State.RESOLVING):
            continue
        if not new.get("function_id") or not new.get("response_status"):
            continue
        task = TaskRecord.model_validate(new)
        found.setdefault(task.task_guid, task)
    return list(found.values())


@dataclass(frozen=True)
class TriggerDetail:
    trigger: TriggerRecord
    tags: dict[str, TagRecord]


@dataclass(frozen=True)
class TriggerPage:
    triggers: list[TriggerRecord]
    total: int
    tags: dict[str, TagRecord]


class TriggerService:
    def __init__(self, store: TriggerStore, functions: FunctionStore, *,
                 tags: TagService | None = None, tasks: TaskService | None = None,
                 max_depth: int | None = None, max_chain_tasks: int | None = None):
        self.store = store
        self.functions = functions
        self._tags = tags
        self._tasks = tasks
        settings = get_settings()
        self.max_depth = max_depth if max_depth is not None else settings.trigger_max_depth
        self.max_chain_tasks = (max_chain_tasks if max_chain_tasks is not None
                                else settings.trigger_chain_max_tasks)

    @classmethod
    def from_env(cls) -> TriggerService:
        return cls(TriggerStore(wiring.table()), wiring.functions())

    @property
    def tags(self) -> TagService:
        if self._tags is None:
            self._tags = TagService.from_env()
        return self._tags

    @property
    def tasks(self) -> TaskService:
        if self._tasks is None:
            self._tasks = TaskService.from_env()
        return self._tasks

    def create(self, caller: Caller, fields: dict[str, Any]) -> TriggerRecord:
        """fields: function_id, next_id, status, include_result, tags, description. Both
        functions must be the caller's (404 otherwise: no chaining into another's)."""
        owned(self.functions.get, fields["function_id"], caller, "function")
        owned(self.functions.get, fields["next_id"], caller, "next function")
        tags, _ = self.tags.check(caller, fields.get("tags", ()))
        record = TriggerRecord(id=ids.new_id(), owner=caller.user, created_at=now_ns(),
                               **{**fields, "tags": list(tags)})
        if not self.store.put_new(record):
            raise Conflict("trigger id taken; try again")
        return record

    def get(self, caller: Caller, trigger_id: str) -> TriggerRecord:
        return owned(lambda key: self.store.get(caller.user, key), trigger_id, caller,
                     "trigger")

    def detail(self, caller: Caller, trigger_id: str) -> TriggerDetail:
        trigger = self.get(caller, trigger_id)
        return TriggerDetail(trigger, self.tags.known(caller.user) if trigger.tags else {})

    def update(self, caller: Caller, trigger_id: str, changes: dict[str, Any]) -> None:
        if not changes:
            raise InvalidRequest("nothing to change",
                                 "give tag, status, includeResult or description")
        self.get(caller, trigger_id)
        if "tags" in changes:
            tags, _ = self.tags.check(caller, changes["tags"])
            changes = {**changes, "tags": list(tags)}
        if not self.store.update(caller.user, trigger_id, changes):
            raise NotFound("trigger not found")

    def delete(self, caller: Caller, trigger_id: str) -> None:
        if not ids.is_id(trigger_id) or not self.store.delete(caller.user, trigger_id):
            raise NotFound("trigger not found")

    def list(self, caller: Caller, *, page: int, limit: int,
             function_id: str | None) -> TriggerPage:
        if page * limit > LIST_DEPTH_MAX + limit:
            raise InvalidRequest("page too deep", f"page × limit at most {LIST_DEPTH_MAX}")
        if function_id is not None:  # another owner's function: 404, as the other lists
            owned(self.functions.get, function_id, caller, "function")
        found = [t for t in self.store.of_owner(caller.user)
                 if function_id is None or t.function_id == function_id]
        start = (page - 1) * limit
        shown = found[start:start + limit]
        tagged = any(t.tags for t in shown)
        return TriggerPage(shown, len(found), self.tags.known(caller.user) if tagged else {})

    # --- firing (the stream) -------------------------------------------------------------

    def fire(self, records: list[Mapping[str, Any]]) -> list[str]:
        """The child tasks a stream batch calls for (ids of those created or found created).
        A refused child (next function gone, paused, without code) is logged and skipped;
        anything else raises, so the batch comes again."""
        fired: list[str] = []
        # Every finished task of a function reaches this function, most with no trigger:
        # one Query per function a batch, not one per task.
        of_function: dict[str, list[TriggerRecord]] = {}
        for task in newly_finished(records):
            if task.function_id not in of_function:
                of_function[task.function_id] = self.store.of_function(task.function_id)
            for trigger in of_function[task.function_id]:
                if matches(trigger, task):
                    child = self.fire_one(trigger, task)
                    if child is not None:
                        fired.append(child)
        return fired

    def _stop(self, trigger: TriggerRecord, parent: TaskRecord, reason: str) -> None:
        logger.warning("trigger %s: task %s not followed: %s", trigger.id, parent.task_guid,
                       reason)
        self.store.update(trigger.owner, trigger.id, {
            "stopped_task_id": parent.task_guid, "stopped_reason": reason,
            "stopped_at": now_ns()})

    def fire_one(self, trigger: TriggerRecord, parent: TaskRecord) -> str | None:
        if parent.trigger_depth >= self.max_depth:
            self._stop(trigger, parent, f"trigger chain depth limit {self.max_depth} reached")
            return None
        root = parent.trigger_root or parent.task_guid
        child_id = child_task_id(parent, trigger.id)
        if not self.store.reserve_in_chain(root, child_id, self.max_chain_tasks,
                                           expires_at=parent.expires_at):
            self._stop(trigger, parent,
                       f"trigger chain task limit {self.max_chain_tasks} reached")
            return None
        body: Any = None
        size = 0
        if trigger.include_result:
            response = self.tasks.response_of(parent)
            if response.location:  # kept in S3, larger than any task's body
                self._stop(trigger, parent, "includeResult: the result is too large to be the"
                           " next task's body")
                return None
            content_type = next((v for k, v in response.headers.items()
                                 if k.lower() == "content-type"), None)
            try:
                body = parse_task_body(response.body, content_type)
            except InvalidRequest:
                body = response.body.decode(errors="replace")
            size = len(response.body)
        caller = Caller(user=trigger.owner, scope=Scope.USER)
        try:
            child = self.tasks.create(
                caller, trigger.next_id, body=body, query={}, size=size,
                task_id=child_id, triggered_by=parent.task_guid,
                trigger_depth=parent.trigger_depth + 1, trigger_root=root)
        except TaskfnError as error:  # next function gone, paused, without code; too large
            self._stop(trigger, parent, f"{trigger.next_id}: {error.message}")
            return None
        return child.task_guid
