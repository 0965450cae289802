"""Task records in the table. Every change is one conditional write built from a
lifecycle Transition; a failed condition is explained by the lifecycle, not here."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from taskfn import lifecycle, userjson
from taskfn.lifecycle import Outcome, State, Transition
from taskfn.models import JSON_TEXT_FIELDS, TaskRecord, TaskSummary, answer_status, now_ns
from taskfn.stores.metrics import FunctionMetrics, endpoint_counters
from taskfn.stores.table import Filter, Table, task_key, time_key

logger = logging.getLogger(__name__)

# The open index (GSI3) is sharded: one partition key takes about 1,000 writes a second, and
# every task writes its entry at least twice. The count may grow (readers read every shard
# below it) but never shrink, or tasks on the dropped shards would never be converged.
OPEN = "OPEN"
OPEN_SHARDS = 16
CALLBACK_URL = "completion_callback_url"
DOMAIN_KEY = "GSI4PK"
# The domain index's sort keys: Pending tasks first, by when they became Pending; the others
# share one key (a GSI key need not be unique), so a write that leaves them non-Pending (a
# cancel of a Running task) changes no key.
PENDING = "PENDING#"
TAKEN = "TAKEN"


def open_partition(task_guid: str) -> str:
    """The open index's shard of a task, from a hash every process computes alike (crc32;
    Python's hash() of a str differs between processes)."""
    return f"{OPEN}#{zlib.crc32(task_guid.encode()) % OPEN_SHARDS}"


def open_partitions() -> list[str]:
    """Every partition of the open index a reader must read: the shards, and the unsharded
    partition of tasks written before sharding (empty once those have finished)."""
    return [OPEN, *(f"{OPEN}#{shard}" for shard in range(OPEN_SHARDS))]


def function_partition(function_id: str) -> str:
    """A function's tasks on GSI2, by creation time (keys only): the CSV export's dates, the
    task list's functionId filter."""
    return f"FUNC#{function_id}#TASK"


def created_from(since_ns: int) -> tuple[str, str]:
    """The sort key range (owner and function lists) of tasks created from `since_ns` on."""
    return time_key(since_ns, ""), time_key(10**20 - 1, "~")


# The task list's status filter, on the list's own status field: the function's HTTP status
# once the task has finished (for one without a response of its own, models.answer_status:
# 200 for a cell's success, 500 for a cancelled, expired or failed one), 0 before. A code
# (100-599) or 0, or one of these words for the outcome:
# pending (not finished), succeeded (finished, not failed), failed (finished and failed).
UNFINISHED, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
STATUS_WORDS = (UNFINISHED, SUCCEEDED, FAILED)
TaskStatus = int | str


def status_filter(status: TaskStatus) -> Filter:
    """The status filter as a FilterExpression over the owner index's projection. Records
    leave default values out (0, False), so an absent attribute is matched as one."""
    names = {"#f_done": "first_completed_at"}
    values: dict[str, Any] = {":f_zero": 0}
    if status in (0, UNFINISHED):
        return Filter("(attribute_not_exists(#f_done) OR #f_done = :f_zero)", names, values)
    finished = "#f_done > :f_zero"
    if status in (SUCCEEDED, FAILED):
        names["#f_failed"] = "failed"
        if status == FAILED:
            values[":f_true"] = True
            return Filter(f"{finished} AND #f_failed = :f_true", names, values)
        values[":f_false"] = False
        return Filter(f"{finished} AND (attribute_not_exists(#f_failed) OR #f_failed = :f_false)",
                      names, values)
    names["#f_status"] = "response_status"
    values[":f_code"] = status
    same = "#f_status = :f_code"
    if status in (200, 500):  # also the tasks with no answer of their own (models.answer_status)
        names["#f_failed"] = "failed"
        values[":f_true"] = True
        unanswered = "(attribute_not_exists(#f_status) OR #f_status = :f_zero)"
        outcome = ("#f_failed = :f_true" if status == 500
                   else "(attribute_not_exists(#f_failed) OR #f_failed <> :f_true)")
        same = f"({same} OR ({unanswered} AND {outcome}))"
    return Filter(f"{finished} AND {same}", names, values)


def status_matches(task: TaskSummary, status: TaskStatus) -> bool:
    """status_filter, for tasks read by key (no FilterExpression there)."""
    if status in (0, UNFINISHED):
        return not task.finished
    if not task.finished:
        return False
    if status in (SUCCEEDED, FAILED):
        return task.failed == (status == FAILED)
    return answer_status(task.response_status, task.failed) == status


def domain_partition(domain: str) -> str:
    return f"DOMAIN#{domain}"


def pending_key(since: int, task_guid: str) -> str:
    """A Pending task's sort key on the domain index: the head of its domain's partition."""
    return PENDING + time_key(since, task_guid)


def keeps_open(item: dict[str, Any]) -> bool:
    """Whether a finished task stays on the open index: convergence still has to deliver its
    callback or, for a Cell API task, delete it after the completed expiry."""
    return bool(item.get(CALLBACK_URL)) or DOMAIN_KEY in item


def marked(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a record reads it: whether it is a Cell API task comes from its key."""
    return {**item, "cell_api": True} if DOMAIN_KEY in item else item


def readable[T: BaseModel](model: type[T], items: Iterable[dict[str, Any]]) -> list[T]:
    """The items that read back as `model`. One that does not (written by an older version,
    or by hand) is reported and left out: a list, a convergence pass or a stream batch must
    not stop for every user because of one item."""
    records = []
    for item in items:
        try:
            records.append(model.model_validate(item))
        except ValidationError as error:
            logger.error("unreadable item %s left out: %s", item.get("PK") or item.get("task_guid"),
                         error.errors(include_url=False, include_input=False)[:3])
    return records


class TaskStore:
    def __init__(self, table: Table, metrics: FunctionMetrics | None = None):
        self.table = table
        # The functions' task counters, counted as their tasks are created and finish.
        self.metrics = metrics

    def put_new(self, task: TaskRecord) -> bool:
        """The create write: False when the id is taken (BBS ResourceExists)."""
        created = self.table.put_new(self.item_for(task))
        if created and task.function_id and self.metrics is not None:
            self.metrics.created(task.function_id, task.created_at)
        return created

    @staticmethod
    def item_for(task: TaskRecord) -> dict[str, Any]:
        """The item a task is written as: the record, its keys and the index keys it has in
        its state (a new task is Pending; others are written so by tests and benchmarks)."""
        created = time_key(task.created_at, task.task_guid)
        pk, sk = task_key(task.task_guid)
        values: dict[str, Any] = {
            "PK": pk,
            "SK": sk,
            "GSI1PK": f"OWNER#{task.owner}#TASK",
            "GSI1SK": created,
            **task.model_dump(mode="json", exclude_defaults=True),
            "state": task.state.value,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
        }
        if task.function_id:
            # Written once with the task; keys only and never changed, so no later write of
            # the task touches this index.
            values["GSI2PK"], values["GSI2SK"] = function_partition(task.function_id), created
        for field, attribute in JSON_TEXT_FIELDS.items():
            value = getattr(task, field)
            values.pop(field, None)
            if value is not None:
                values[attribute] = userjson.dumps(value)
        if task.desired:
            # Sparse: only Cell API tasks are listed by domain (list.r3).
            values[DOMAIN_KEY] = domain_partition(task.domain)
            pending = task.state is State.PENDING
            values["GSI4SK"] = pending_key(task.created_at, task.task_guid) if pending else TAKEN
        if not task.finished or keeps_open(values):
            values["GSI3PK"], values["GSI3SK"] = open_partition(task.task_guid), created
        return values

    def get(self, task_id: str, *, consistent: bool = False) -> TaskRecord | None:
        """The task; `consistent` for a decision that must see the latest write."""
        item = self.table.get(*task_key(task_id), consistent=consistent)
        return TaskRecord.model_validate(marked(item)) if item else None

    def get_many(self, task_ids: list[str]) -> list[TaskRecord]:
        """The tasks of `task_ids` that exist (BatchGetItem), in no order."""
        items = self.table.get_many([task_key(task_id) for task_id in task_ids])
        return readable(TaskRecord, (marked(item) for item in items))

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None, since_ns: int = 0,
        status: TaskStatus | None = None,
    ) -> tuple[list[TaskSummary], str | None]:
        """An owner's tasks created from `since_ns` on (older ones are past their retention,
        whether or not DynamoDB's TTL has removed them yet), newest first: one Query. A
        `status` filters the page read (status_filter), which may then hold fewer than
        `limit` tasks, even none, with a cursor to go on."""
        page = self.table.query("GSI1", f"OWNER#{owner}#TASK", limit=limit, cursor=cursor,
                                between=created_from(since_ns),
                                where=None if status is None else status_filter(status))
        return readable(TaskSummary, page.items), page.cursor

    def list_by_domain(
        self, domain: str, *, bound: int, cell_id: str | None = None, owner: str | None = None
    ) -> list[TaskRecord]:
        """Cell API tasks of a domain, oldest first: one Query per page of each key range of
        the domain's partition; cell and owner are filters on it. BBS has no paging, so every
        page is read, up to `bound` tasks, Pending ones first: a bound never hides them behind
        finished ones (which convergence deletes after the completed expiry). Last, the keys
        written before Pending work had a range of its own ("<created>#<id>")."""
        equals = {"cell_id": cell_id} if cell_id else {}
        if owner is not None:
            equals["owner"] = owner
        items: list[dict[str, Any]] = []
        more = False
        for key_range in ({"prefix": PENDING}, {"prefix": TAKEN}, {"below": PENDING}):
            if len(items) >= bound:
                more = True
                break
            found, more = self.table.query_all(
                "GSI4", domain_partition(domain), bound=bound - len(items), equals=equals,
                **key_range,
            )
            items += found
        if more:
            logger.warning("list of domain %s stopped at %d tasks", domain, bound)
        tasks = readable(TaskRecord, (marked(item) for item in items))
        return sorted(tasks, key=lambda task: (task.created_at, task.task_guid))

    def list_pending(
        self, domain: str, *, limit: int, cursor: str | None = None, owner: str | None = None
    ) -> tuple[list[TaskRecord], str | None]:
        """One page of a domain's Pending Cell API tasks, in the order they became Pending,
        with the cursor of the next: a Query of the Pending key range only, so its cost is
        the pending work's whatever else the domain holds. With `owner`, only theirs (a
        user's node): a filter, so a page may hold fewer, with a cursor to go on."""
        where = None if owner is None else Filter(
            "#f_owner = :f_owner", {"#f_owner": "owner"}, {":f_owner": owner})
        page = self.table.query(
            "GSI4", domain_partition(domain), limit=limit, cursor=cursor, newest_first=False,
            prefix=PENDING, where=where,
        )
        return readable(TaskRecord, (marked(item) for item in page.items)), page.cursor

    def open_tasks(
        self, *, bound: int, attributes: tuple[str, ...] = ()
    ) -> tuple[list[TaskRecord], bool]:
        """Unfinished tasks (and finished ones convergence still has work for, until
        deleted), oldest first across every shard of the sparse open index (keys only, paged
        Queries merged), then BatchGetItem of those keys. Never a Scan. Also says whether more
        exist beyond `bound`. A task finished in between is read as it is now (callers check
        its state). Pass DOMAIN_KEY among `attributes` to know which are Cell API tasks."""
        keys, more = self.table.query_merged("GSI3", open_partitions(), bound=bound)
        order = {key["PK"]: position for position, key in enumerate(keys)}
        items = self.table.get_many([(k["PK"], k["SK"]) for k in keys], attributes=attributes)
        items.sort(key=lambda item: order.get(task_key(item.get("task_guid"))[0], 0))
        return readable(TaskRecord, (marked(item) for item in items)), more

    def apply(
        self,
        task_id: str,
        transition: Transition,
        *,
        has_callback: bool | None = None,
        desired: bool | None = None,
    ) -> Outcome:
        """One conditional write; on a failed condition the lifecycle says why.

        Completing a task takes it off the open index, unless it has a completion callback or
        is a Cell API task: convergence must still find it Completed or Resolving until it is
        deleted. Either way the write is conditional on which it is. A caller that read the
        task says (`has_callback`, `desired`); otherwise the write assumes neither (a
        GreenCloud task, the common case: one write) and writes again the other way when the
        task turns out otherwise. Queuing the callback is not the writer's business: the
        stream does it. A move into or out of Pending moves the task's domain index key
        (a GreenCloud task, without GSI4PK, is on no domain index whatever its GSI4SK)."""
        condition, names, values = self._condition(transition)
        if transition.max_rejections is not None:
            # A count never written is 0 (records leave defaults out): below any limit but 0.
            below = "#rejections < :c_rejections"
            if transition.max_rejections > 0:
                below = f"(attribute_not_exists(#rejections) OR {below})"
            condition += f" AND {below}"
            names["#rejections"] = "rejection_count"
            values["rejections"] = transition.max_rejections
        finishing = transition.to_state is State.COMPLETED and bool(
            transition.from_states & lifecycle.UNFINISHED
        )
        if not finishing:
            ok, item = self._update(task_id, transition, condition, names, values, None)
        else:
            keep = bool(has_callback) or bool(desired)
            ok, item = self._update(task_id, transition, condition, names, values, keep)
            if not ok and item is not None and keeps_open(item) != keep:
                ok, item = self._update(task_id, transition, condition, names, values, not keep)
        if not ok:
            return lifecycle.explain(transition, item)
        if finishing and self.metrics is not None and item and item.get("function_id"):
            self.metrics.finished(str(item["function_id"]))
            # --- public endpoints: the endpoint's counters, beside its function's ---
            if item.get("endpoint_id"):
                self.metrics.finished(str(item["function_id"]),
                                      of=endpoint_counters(str(item["endpoint_id"])))
        return Outcome(True, item)

    @staticmethod
    def _domain_key(task_id: str, transition: Transition) -> dict[str, str]:
        """The domain index sort key a transition gives: into Pending, the head of the domain
        (by when it became Pending again); out of it, the shared key of the others."""
        if transition.to_state is State.PENDING:
            since = int(transition.updates.get("updated_at") or now_ns())
            return {"GSI4SK": pending_key(since, task_id)}
        if State.PENDING in transition.from_states:
            return {"GSI4SK": TAKEN}
        return {}

    def _update(
        self,
        task_id: str,
        transition: Transition,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        keep_open_index: bool | None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """The write; for a completion, leaving the open index (False) or keeping it (True),
        each only if the task is what that assumes."""
        if keep_open_index is not None:
            names = {**names, "#callback": CALLBACK_URL, "#domain": DOMAIN_KEY}
            values = {**values, "nocallback": ""}
        if keep_open_index is False:
            condition += (" AND (attribute_not_exists(#callback) OR #callback = :c_nocallback)"
                          " AND attribute_not_exists(#domain)")
        elif keep_open_index:
            condition += (" AND ((attribute_exists(#callback) AND #callback <> :c_nocallback)"
                          " OR attribute_exists(#domain))")
        return self.table.update(
            *task_key(task_id),
            set_values={
                **transition.updates,
                "state": transition.to_state.value,
                **self._domain_key(task_id, transition),
            },
            remove=("GSI3PK", "GSI3SK") if keep_open_index is False else (),
            add_values=transition.increments,
            append_values=transition.appends,
            condition=condition,
            condition_values=values,
            condition_names=names,
        )

    def hold(self, task_id: str, transition: Transition) -> Outcome:
        """A hold (lifecycle.hold) as one conditional write that also takes the task off the
        open index: convergence neither expires nor dispatches a task waiting for its
        function's resume (the hold markers find it, taskfn.services.holds)."""
        return self._moved(task_id, transition, open_index=False)

    def release(self, task_id: str, transition: Transition) -> Outcome:
        """A release (lifecycle.release): back on its open index shard, in one conditional
        write, for convergence to dispatch should the send that follows be lost."""
        return self._moved(task_id, transition, open_index=True)

    def next_turn(self, task_id: str, transition: Transition) -> Outcome:
        """A conversation's next turn (lifecycle.next_turn) as one conditional write that
        also puts the task back on its open index shard, by the time of the turn (the
        completion of the last turn took it off): convergence dispatches it should the send
        that follows be lost, and expires it should it never start."""
        condition, names, values = self._condition(transition)
        at = int(transition.updates.get("updated_at") or now_ns())
        updates = {**transition.updates, "state": transition.to_state.value,
                   "GSI3PK": open_partition(task_id), "GSI3SK": time_key(at, task_id)}
        ok, item = self.table.update(
            *task_key(task_id), set_values=updates, condition=condition,
            condition_values=values, condition_names=names)
        if not ok:
            return lifecycle.explain(transition, item)
        if self.metrics is not None and item and item.get("function_id"):
            # Each turn counts as a task of its function (its end is counted as one).
            self.metrics.created(str(item["function_id"]), at)
        return Outcome(True, item)

    def _moved(self, task_id: str, transition: Transition, *, open_index: bool) -> Outcome:
        condition, names, values = self._condition(transition)
        updates = {**transition.updates, "state": transition.to_state.value,
                   **self._domain_key(task_id, transition)}
        # Without its partition key an item is on no index; its sort key (the creation
        # time) stays, ready for the release.
        if open_index:
            updates["GSI3PK"] = open_partition(task_id)
        ok, item = self.table.update(
            *task_key(task_id), set_values=updates,
            remove=() if open_index else ("GSI3PK",),
            condition=condition, condition_values=values, condition_names=names)
        if not ok:
            return lifecycle.explain(transition, item)
        return Outcome(True, item)

    def remove(self, task_id: str, transition: Transition) -> Outcome:
        """A removing transition (DeleteTask) as one conditional DeleteItem."""
        condition, names, values = self._condition(transition)
        ok, item = self.table.delete_checked(
            *task_key(task_id),
            condition=condition,
            names=names,
            values={f":c_{key}": value for key, value in values.items()},
        )
        if ok:
            return Outcome(True, None)
        return lifecycle.explain(transition, item)

    @staticmethod
    def _condition(transition: Transition) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The states (and cell) a transition requires, as a condition expression; value
        placeholders are ":c_<key>" for each key of the returned values."""
        names = {"#state": "state"}
        values: dict[str, Any] = {}
        states = []
        for index, state in enumerate(sorted(transition.from_states)):
            values[f"s{index}"] = state.value
            states.append(f":c_s{index}")
        condition = f"#state IN ({', '.join(states)})"
        if transition.cell_id is not None:
            condition += " AND #cell = :c_cell"
            names["#cell"] = "cell_id"
            values["cell"] = transition.cell_id
        if transition.updated_at is not None:
            condition += " AND #updated = :c_updated"
            names["#updated"] = "updated_at"
            values["updated"] = transition.updated_at
        if transition.retried is not None:
            # Records leave a zero count out.
            same = "#retried = :c_retried"
            if transition.retried == 0:
                same = f"(attribute_not_exists(#retried) OR {same})"
            condition += f" AND {same}"
            names["#retried"] = "retried"
            values["retried"] = transition.retried
        if transition.held:
            condition += " AND attribute_exists(#held_at)"
            names["#held_at"] = "held_at"
        if transition.not_held:
            condition += " AND attribute_not_exists(#held_at)"
            names["#held_at"] = "held_at"
        if transition.turn is not None:
            same = "#turn = :c_turn"
            if transition.turn == 0:  # records leave a zero turn out
                same = f"(attribute_not_exists(#turn) OR {same})"
            condition += f" AND {same}"
            names["#turn"] = "turn"
            values["turn"] = transition.turn
        if transition.owner is not None:
            condition += " AND #owner = :c_owner"
            names["#owner"] = "owner"
            values["owner"] = transition.owner
        if transition.unprivileged:
            condition += (" AND (attribute_not_exists(#caps.#privileged)"
                          " OR #caps.#privileged = :c_unprivileged)")
            names["#caps"], names["#privileged"] = "capabilities", "privileged"
            values["unprivileged"] = False
        if transition.not_before is not None:
            condition += " AND (attribute_not_exists(#retry_at) OR #retry_at <= :c_not_before)"
            names["#retry_at"] = "retry_at"
            values["not_before"] = transition.not_before
        return condition, names, values

    # The attributes of a task the list shows and list_by_function checks.
    LIST_ATTRIBUTES = ("task_guid", "owner", "created_at", "progress", "response_status",
                       "failed", "first_completed_at")

    def list_by_function(
        self, function_id: str, *, owner: str, limit: int, cursor: str | None,
        since_ns: int = 0, status: TaskStatus | None = None,
    ) -> tuple[list[TaskSummary], str | None]:
        """A function's tasks created from `since_ns` on, newest first: one Query of its
        partition of GSI2 (keys only) for the page's keys, then one BatchGetItem of those
        tasks (the list's attributes only), in that order. The owner (a function's tasks are
        its owner's; checked all the same) and `status` (status_matches) are applied to what
        was read, so a page may hold fewer than `limit` tasks, even none, with a cursor to
        go on. The cursor continues this function's listing only."""
        page = self.table.query("GSI2", function_partition(function_id), limit=limit,
                                cursor=cursor, between=created_from(since_ns))
        order = {key["PK"]: position for position, key in enumerate(page.items)}
        items = self.table.get_many([(key["PK"], key["SK"]) for key in page.items],
                                    attributes=self.LIST_ATTRIBUTES)
        items = sorted((item for item in items if item.get("owner") == owner),
                       key=lambda item: order.get(task_key(item.get("task_guid"))[0], 0))
        tasks = readable(TaskSummary, items)
        if status is not None:
            tasks = [task for task in tasks if status_matches(task, status)]
        return tasks, page.cursor
