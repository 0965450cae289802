"""Triggers (GreenCloud's /v1/trigger): "after a task of functionId finishes with status, run
nextId".

A trigger lives in its owner's partition, "OWNER#<user>#TRIGGER" / "TRIGGER#<id>", like
schedules: the owner's list is one strongly consistent Query and another owner's trigger is
simply not in the caller's partition. It also carries GSI4PK "FUNC#<function id>#TRIGGER" /
GSI4SK "TRIGGER#<id>" (GSI4 projects every attribute), so the firing path reads the triggers
of a finished task's function with one Query of one index partition, never a scan.
"""

from __future__ import annotations

from typing import Any

from taskfn.models import Record
from taskfn.stores.table import Table, task_key

TRIGGER = "TRIGGER#"
PAGE = 500


class TriggerRecord(Record):
    id: str
    owner: str
    function_id: str
    next_id: str
    status: int
    include_result: bool
    tags: list[str] = []
    description: str = ""
    created_at: int
    # The last chain this trigger stopped at the depth limit (taskfn's extension, shown by
    # GET /v1/trigger/{id} as stoppedChain): the task that was not followed, and why.
    stopped_task_id: str = ""
    stopped_reason: str = ""
    stopped_at: int = 0


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#TRIGGER"


def function_partition(function_id: str) -> str:
    return f"FUNC#{function_id}#TRIGGER"


# Beside a chain's first task: how many tasks its triggers made, and which.
CHAIN = "CHAIN"


class TriggerStore:
    def __init__(self, table: Table):
        self.table = table

    def reserve_in_chain(self, root: str, child_id: str, limit: int, *,
                         expires_at: int) -> bool:
        """One task more in the chain started by task `root`, unless it has `limit`: one
        conditional ADD on "TASK#<root>" / "CHAIN" that also remembers the child, so the
        same child again (a stream record delivered twice) is allowed and not counted."""
        ok, old = self.table.update(
            task_key(root)[0], CHAIN, set_values={"expires_at": expires_at or None},
            add_values={"tasks": 1, "children": {child_id}},
            condition="(attribute_not_exists(#n) OR #n < :c_limit) AND "
                      "(attribute_not_exists(#c) OR NOT contains(#c, :c_child))",
            condition_values={"limit": limit, "child": child_id},
            condition_names={"#n": "tasks", "#c": "children"})
        return ok or child_id in ((old or {}).get("children") or [])

    def put_new(self, trigger: TriggerRecord) -> bool:
        return self.table.put_new({"PK": owner_partition(trigger.owner),
                                   "SK": f"{TRIGGER}{trigger.id}",
                                   "GSI4PK": function_partition(trigger.function_id),
                                   "GSI4SK": f"{TRIGGER}{trigger.id}",
                                   **trigger.model_dump(mode="json")})

    def get(self, owner: str, trigger_id: str) -> TriggerRecord | None:
        item = self.table.get(owner_partition(owner), f"{TRIGGER}{trigger_id}", consistent=True)
        return TriggerRecord.model_validate(item) if item else None

    def of_owner(self, owner: str) -> list[TriggerRecord]:
        """Every trigger of the owner, oldest first: one strongly consistent Query (paged)."""
        found: list[TriggerRecord] = []
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(owner_partition(owner), prefix=TRIGGER,
                                                  limit=PAGE, start=start)
            found += [TriggerRecord.model_validate(item) for item in items]
            if start is None:
                return sorted(found, key=lambda t: (t.created_at, t.id))

    def of_function(self, function_id: str) -> list[TriggerRecord]:
        """The triggers on a function's tasks: one Query of GSI4 (eventually consistent: a
        trigger created a moment before a task finishes may not fire for that task)."""
        found: list[TriggerRecord] = []
        cursor: str | None = None
        while True:
            page = self.table.query("GSI4", function_partition(function_id), limit=PAGE,
                                    cursor=cursor, newest_first=False, prefix=TRIGGER)
            found += [TriggerRecord.model_validate(item) for item in page.items]
            cursor = page.cursor
            if cursor is None:
                return found

    def update(self, owner: str, trigger_id: str, changes: dict[str, Any]) -> bool:
        """False when the owner has no such trigger."""
        ok, _ = self.table.update(owner_partition(owner), f"{TRIGGER}{trigger_id}",
                                  set_values=changes, condition="attribute_exists(PK)")
        return ok

    def delete(self, owner: str, trigger_id: str) -> bool:
        return self.table.delete(owner_partition(owner), f"{TRIGGER}{trigger_id}",
                                 condition="#o = :o", names={"#o": "owner"},
                                 values={":o": owner})
