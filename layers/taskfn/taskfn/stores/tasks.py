"""Task records in the table. Every change is one conditional write built from a
lifecycle Transition; a failed condition is explained by the lifecycle, not here."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from taskfn import lifecycle, userjson
from taskfn.lifecycle import Outcome, State, Transition
from taskfn.models import JSON_TEXT_FIELDS, TaskRecord, TaskSummary
from taskfn.stores.table import Table, time_key

logger = logging.getLogger(__name__)

OPEN = "OPEN"
CALLBACK_URL = "completion_callback_url"


def domain_partition(domain: str) -> str:
    return f"DOMAIN#{domain}"


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
    def __init__(self, table: Table):
        self.table = table

    def put_new(self, task: TaskRecord) -> bool:
        """The create write: False when the id is taken (BBS ResourceExists)."""
        return self.table.put_new(self.item_for(task))

    @staticmethod
    def item_for(task: TaskRecord) -> dict[str, Any]:
        """The item a new task is written as: the record, its keys and its index keys."""
        created = time_key(task.created_at, task.task_guid)
        values: dict[str, Any] = {
            "PK": f"TASK#{task.task_guid}",
            "SK": "TASK",
            "GSI1PK": f"OWNER#{task.owner}#TASK",
            "GSI1SK": created,
            **task.model_dump(mode="json", exclude_defaults=True),
            "state": task.state.value,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
        }
        for field, attribute in JSON_TEXT_FIELDS.items():
            value = getattr(task, field)
            values.pop(field, None)
            if value is not None:
                values[attribute] = userjson.dumps(value)
        if not task.finished:
            values["GSI3PK"], values["GSI3SK"] = OPEN, created
        if task.desired:
            # Sparse: only Cell API tasks are listed by domain (list.r3).
            values["GSI4PK"], values["GSI4SK"] = domain_partition(task.domain), created
        return values

    def get(self, task_id: str, *, consistent: bool = False) -> TaskRecord | None:
        """The task; `consistent` for a decision that must see the latest write."""
        item = self.table.get(f"TASK#{task_id}", "TASK", consistent=consistent)
        return TaskRecord.model_validate(item) if item else None

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskSummary], str | None]:
        page = self.table.query("GSI1", f"OWNER#{owner}#TASK", limit=limit, cursor=cursor)
        return readable(TaskSummary, page.items), page.cursor

    def list_by_domain(
        self, domain: str, *, bound: int, cell_id: str | None = None, owner: str | None = None
    ) -> list[TaskRecord]:
        """Cell API tasks of a domain, oldest first: one Query per page of the domain's
        partition; cell and owner are filters on it. BBS has no paging, so every page is read,
        up to `bound` tasks (convergence keeps a domain to its live and recent tasks)."""
        equals = {"cell_id": cell_id} if cell_id else {}
        if owner is not None:
            equals["owner"] = owner
        items, more = self.table.query_all(
            "GSI4", domain_partition(domain), bound=bound, equals=equals
        )
        if more:
            logger.warning("list of domain %s stopped at %d tasks", domain, bound)
        return readable(TaskRecord, items)

    def open_tasks(
        self, *, bound: int, attributes: tuple[str, ...] = ()
    ) -> tuple[list[TaskRecord], bool]:
        """Unfinished tasks (and finished ones with a callback, until deleted), oldest first:
        the sparse open index (keys only, paged Query), then BatchGetItem of those keys. Never
        a Scan. Also says whether more exist beyond `bound`. A task finished in between is
        read as it is now (callers check its state)."""
        keys, more = self.table.query_all("GSI3", OPEN, bound=bound)
        order = {key["PK"]: position for position, key in enumerate(keys)}
        items = self.table.get_many([(k["PK"], k["SK"]) for k in keys], attributes=attributes)
        items.sort(key=lambda item: order.get(f"TASK#{item.get('task_guid')}", 0))
        return readable(TaskRecord, items), more

    def apply(
        self, task_id: str, transition: Transition, *, has_callback: bool | None = None
    ) -> Outcome:
        """One conditional write; on a failed condition the lifecycle says why.

        Completing a task takes it off the open index, unless it has a completion callback:
        convergence must still find it Completed or Resolving until it is deleted. A caller
        that read the task says which (`has_callback`); otherwise the write assumes none (the
        common case, one write) and writes again keeping the index when the task turns out to
        have one. Queuing the callback is not the writer's business: the stream does it."""
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
        leave_index = finishing and has_callback is not True
        ok, item = self._update(task_id, transition, condition, names, values, leave_index)
        if not ok and leave_index and item is not None and item.get(CALLBACK_URL):
            ok, item = self._update(task_id, transition, condition, names, values, False)
        if not ok:
            return lifecycle.explain(transition, item)
        return Outcome(True, item)

    def _update(
        self,
        task_id: str,
        transition: Transition,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        leave_open_index: bool,
    ) -> tuple[bool, dict[str, Any] | None]:
        if leave_open_index:
            condition += " AND (attribute_not_exists(#callback) OR #callback = :c_nocallback)"
            names = {**names, "#callback": CALLBACK_URL}
            values = {**values, "nocallback": ""}
        return self.table.update(
            f"TASK#{task_id}",
            "TASK",
            set_values={**transition.updates, "state": transition.to_state.value},
            remove=("GSI3PK", "GSI3SK") if leave_open_index else (),
            add_values=transition.increments,
            append_values=transition.appends,
            condition=condition,
            condition_values=values,
            condition_names=names,
        )

    def remove(self, task_id: str, transition: Transition) -> Outcome:
        """A removing transition (DeleteTask) as one conditional DeleteItem."""
        condition, names, values = self._condition(transition)
        ok, item = self.table.delete_checked(
            f"TASK#{task_id}",
            "TASK",
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
        if transition.not_before is not None:
            condition += " AND (attribute_not_exists(#retry_at) OR #retry_at <= :c_not_before)"
            names["#retry_at"] = "retry_at"
            values["not_before"] = transition.not_before
        return condition, names, values
