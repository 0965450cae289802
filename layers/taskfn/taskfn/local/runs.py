"""The local jobs' runs in flight, kept in moto itself, so that a stack started again on its
data directory can tell the end of the runs that the previous one never saw end.

ECS always tells a task's end (its STOPPED event), and fastlane completes or retries a job's
execution from that event alone. The local back-end (local/containers.py) runs a command as a
child process of the stack: a killed stack takes its runs with it and tells nothing, and the
execution would stay running until the converger gives it up, past its timeout. So each run
is written here before the platform learns its reference (in the same snapshot as the task
record that names it, or in an earlier one) and removed once its STOPPED event is sent; a
start sends the STOPPED event of every run left, with SIGKILL's exit code, as ECS would tell
a task whose host died. The usual rules then apply: retried while retries are left, else
failed, and an event about a run the task has moved on from is ignored.
"""

from __future__ import annotations

import json
from typing import Any

from taskfn.local.provision import ensure_key_table
from taskfn.runtime.containers import Launch

SUFFIX = "-container-runs"
KILLED_EXIT = 137  # what a SIGKILL'd command exits with
KILLED_REASON = "taskfn local ended while the command ran"


class RunLedger:
    """{task ARN: what its STOPPED event names of its launch}, in `<prefix>-container-runs`
    (created here). The command's words and environment are not kept: they may be secret."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.table = prefix + SUFFIX

    def create(self) -> None:
        ensure_key_table(self.client, self.table, "ref")

    def started(self, ref: str, launch: Launch) -> None:
        self.client.put_item(TableName=self.table, Item={
            "ref": {"S": ref}, "launch": {"S": json.dumps({
                "task_guid": launch.task_guid, "execution_id": launch.execution_id,
                "image": launch.image, "timeout_s": launch.timeout_s})}})

    def ended(self, ref: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"ref": {"S": ref}})

    def left(self) -> list[tuple[str, Launch]]:
        """The runs a previous stack started and never saw end."""
        found: list[tuple[str, Launch]] = []
        start: dict[str, Any] | None = None
        while True:
            page = self.client.scan(TableName=self.table, ConsistentRead=True,
                                    **({"ExclusiveStartKey": start} if start else {}))
            for item in page["Items"]:
                found.append((item["ref"]["S"],
                              Launch(argv=(), **json.loads(item["launch"]["S"]))))
            start = page.get("LastEvaluatedKey")
            if not start:
                return found
