"""Coder's agent tasks beside their task records (stores/table.py has the key layout):

  "CODER#<owner>" / "NAME#<lower-cased name>"   a task's name, unique per owner whatever
                                                its case; on GSI1 as "OWNER#<owner>#CODER"
                                                / "<created>#<task id>": the owner's agent
                                                tasks, newest first
  "CODER#<owner>" / "PRESET#<preset id>"        a preset of capabilities and input defaults

A create is one TransactWriteItems of the task record and its name item, each on the
condition that it does not exist: of two creates of one name, one wins and the other writes
nothing (no read decides it). A delete removes both, in one transaction, on the condition
that the record is the owner's and the name is the record's.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import Record, TaskRecord
from taskfn.stores.table import Table, task_key, time_key, to_item
from taskfn.stores.tasks import TaskStore, readable

NAME, PRESET = "NAME#", "PRESET#"
LIST_MAX = 1000  # an owner's agent tasks a list reads at most (it has no paging upstream)


def owner_partition(owner: str) -> str:
    return f"CODER#{owner}"


def list_partition(owner: str) -> str:
    return f"OWNER#{owner}#CODER"


class NameTaken(Exception):
    """Another task of the owner has the name (whatever its case)."""


class PresetRecord(Record):
    """A stored preset (taskfn's extension): capabilities a task runs with, and the input
    its first turn gets when the create gives none."""

    id: str
    owner: str
    name: str
    created_at: int
    updated_at: int
    timeout: int = 0  # 0: the function's own
    mem_size: int = 0
    input_default: str = ""


def _refused(error: ClientError) -> set[int]:
    reasons = error.response.get("CancellationReasons") or []
    return {n for n, reason in enumerate(reasons)
            if reason.get("Code") == "ConditionalCheckFailed"}


class AgentTaskStore:
    def __init__(self, table: Table, tasks: TaskStore):
        self.table = table
        self.tasks = tasks

    def create(self, task: TaskRecord) -> None:
        """The record and its name, together or not at all; NameTaken when the name is."""
        name_item = {
            "PK": owner_partition(task.owner), "SK": NAME + task.agent_name.lower(),
            "task_guid": task.task_guid, "owner": task.owner, "created_at": task.created_at,
            "GSI1PK": list_partition(task.owner),
            "GSI1SK": time_key(task.created_at, task.task_guid),
        }
        items = [{"Put": {"TableName": self.table.name, "Item": to_item(item),
                          "ConditionExpression": "attribute_not_exists(PK)"}}
                 for item in (name_item, self.tasks.item_for(task))]
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if 0 in _refused(error):
                raise NameTaken(task.agent_name) from error
            raise
        if task.function_id and self.tasks.metrics is not None:
            self.tasks.metrics.created(task.function_id, task.created_at)

    def task_id_by_name(self, owner: str, name: str) -> str | None:
        item = self.table.get(owner_partition(owner), NAME + name.lower())
        return str(item["task_guid"]) if item else None

    def delete(self, task: TaskRecord) -> bool:
        """The record and its name item, as one transaction: False when either is no longer
        there as read (deleted meanwhile). A turn running meanwhile is stopped by its cell's
        next heartbeat, which finds no task."""
        pk, sk = task_key(task.task_guid)
        items = [
            {"Delete": {"TableName": self.table.name,
                        "Key": to_item({"PK": pk, "SK": sk}),
                        "ConditionExpression": "#owner = :owner",
                        "ExpressionAttributeNames": {"#owner": "owner"},
                        "ExpressionAttributeValues": to_item({":owner": task.owner})}},
            {"Delete": {"TableName": self.table.name,
                        "Key": to_item({"PK": owner_partition(task.owner),
                                        "SK": NAME + task.agent_name.lower()}),
                        "ConditionExpression": "#guid = :guid",
                        "ExpressionAttributeNames": {"#guid": "task_guid"},
                        "ExpressionAttributeValues": to_item({":guid": task.task_guid})}},
        ]
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _refused(error):
                return False
            raise
        return True

    def list(self, owner: str) -> list[TaskRecord]:
        """The owner's agent tasks, newest first: a Query of their GSI1 partition (a page
        at a time, at most LIST_MAX) and their records by key (BatchGetItem)."""
        ids: list[str] = []
        cursor: str | None = None
        while len(ids) < LIST_MAX:
            page = self.table.query("GSI1", list_partition(owner), limit=LIST_MAX - len(ids),
                                    cursor=cursor)
            ids += [str(item["task_guid"]) for item in page.items]
            cursor = page.cursor
            if not cursor:
                break
        if not ids:
            return []
        order = {task_id: position for position, task_id in enumerate(ids)}
        records = self.tasks.get_many(ids)
        records = [r for r in records if r.owner == owner]
        return sorted(records, key=lambda r: order.get(r.task_guid, 0))

    # --- presets ------------------------------------------------------------------------------

    def put_preset(self, preset: PresetRecord, *, new: bool) -> bool:
        """Write a preset: a new one only if its id is free, an update only if it exists."""
        values = {"PK": owner_partition(preset.owner), "SK": PRESET + preset.id,
                  **preset.model_dump()}
        condition = "attribute_not_exists(PK)" if new else "attribute_exists(PK)"
        try:
            self.table.client.put_item(TableName=self.table.name, Item=to_item(values),
                                       ConditionExpression=condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def preset(self, owner: str, preset_id: str) -> PresetRecord | None:
        item = self.table.get(owner_partition(owner), PRESET + preset_id)
        return PresetRecord.model_validate(item) if item else None

    def presets(self, owner: str) -> list[PresetRecord]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            found, start = self.table.query_items(owner_partition(owner), prefix=PRESET,
                                                  limit=500, start=start)
            items += found
            if start is None or len(items) >= LIST_MAX:
                break
        return readable(PresetRecord, items)

    def delete_preset(self, owner: str, preset_id: str) -> bool:
        return self.table.delete(owner_partition(owner), PRESET + preset_id,
                                 condition="#owner = :owner", names={"#owner": "owner"},
                                 values={":owner": owner})
