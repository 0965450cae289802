"""Task records in the table. Every change is one conditional write built from a
lifecycle Transition; a failed condition is explained by the lifecycle, not here."""

from __future__ import annotations

from typing import Any

from taskfn import lifecycle
from taskfn.lifecycle import Outcome, Transition
from taskfn.models import TaskRecord
from taskfn.stores.table import Table, time_key


def _state_keys(state: str, updated_at: int, task_id: str) -> dict[str, str]:
    return {"GSI3PK": f"STATE#{state}", "GSI3SK": time_key(updated_at, task_id)}


class TaskStore:
    def __init__(self, table: Table):
        self.table = table

    def put_new(self, task: TaskRecord) -> bool:
        """The create write: False when the id is taken (BBS ResourceExists)."""
        values: dict[str, Any] = {
            "PK": f"TASK#{task.task_guid}",
            "SK": "TASK",
            "GSI1PK": f"OWNER#{task.owner}#TASK",
            "GSI1SK": time_key(task.created_at, task.task_guid),
            **_state_keys(task.state.value, task.updated_at, task.task_guid),
            **task.model_dump(mode="json", exclude_defaults=True),
            "state": task.state.value,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
        }
        if task.function_id:
            values["GSI2PK"] = f"FUNC#{task.function_id}#TASK"
            values["GSI2SK"] = time_key(task.created_at, task.task_guid)
        return self.table.put_new(values)

    def get(self, task_id: str) -> TaskRecord | None:
        item = self.table.get(f"TASK#{task_id}", "TASK")
        return TaskRecord.model_validate(item) if item else None

    def list_by_owner(
        self, owner: str, *, limit: int, cursor: str | None
    ) -> tuple[list[TaskRecord], str | None]:
        page = self.table.query("GSI1", f"OWNER#{owner}#TASK", limit=limit, cursor=cursor)
        return [TaskRecord.model_validate(i) for i in page.items], page.cursor

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
        updated_at = int(transition.updates.get("updated_at", 0))
        set_values = {
            **transition.updates,
            "state": transition.to_state.value,
            **_state_keys(transition.to_state.value, updated_at, task_id),
        }
        ok, item = self.table.update(
            f"TASK#{task_id}",
            "TASK",
            set_values=set_values,
            condition=condition,
            condition_values=values,
            condition_names=names,
        )
        if ok:
            return Outcome(True, item)
        return lifecycle.explain(transition, item)
