"""Task records in the table. Every change is one conditional write built from a
lifecycle Transition; a failed condition is explained by the lifecycle, not here."""

from __future__ import annotations

from typing import Any

from taskfn import lifecycle
from taskfn.lifecycle import Outcome, State, Transition
from taskfn.models import TaskRecord, TaskSummary
from taskfn.stores.table import Table, time_key

OPEN = "OPEN"


class TaskStore:
    def __init__(self, table: Table):
        self.table = table

    def put_new(self, task: TaskRecord) -> bool:
        """The create write: False when the id is taken (BBS ResourceExists)."""
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
        if not task.finished:
            values["GSI3PK"], values["GSI3SK"] = OPEN, created
        return self.table.put_new(values)

    def get(self, task_id: str) -> TaskRecord | None:
        item = self.table.get(f"TASK#{task_id}", "TASK")
        return TaskRecord.model_validate(item) if item else None

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskSummary], str | None]:
        page = self.table.query("GSI1", f"OWNER#{owner}#TASK", limit=limit, cursor=cursor)
        return [TaskSummary.model_validate(i) for i in page.items], page.cursor

    def apply(self, task_id: str, transition: Transition) -> Outcome:
        """One conditional write; on a failed condition the lifecycle says why."""
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
        finishing = transition.to_state is State.COMPLETED
        ok, item = self.table.update(
            f"TASK#{task_id}",
            "TASK",
            set_values={**transition.updates, "state": transition.to_state.value},
            remove=("GSI3PK", "GSI3SK") if finishing else (),
            condition=condition,
            condition_values=values,
            condition_names=names,
        )
        if ok:
            return Outcome(True, item)
        return lifecycle.explain(transition, item)
