"""Schedules (GreenCloud's /v1/scheduled): the record in the table, and its EventBridge
Scheduler schedule.

A schedule lives in its owner's partition, "OWNER#<user>#SCHED" / "SCHED#<id>", like tags:
the owner's list is one strongly consistent Query, another owner's schedule is simply not in
the caller's partition, and the run handler (given the owner in the schedule's target input)
reads it by key. A function's schedules are its GSI2 partition "FUNC#<function id>#SCHED" /
"<created>#<id>" (keys: the page's records are then read by key). The input each run gets
(PUT .../payload) is kept in the record as opaque text: the body base64, the query as JSON
text, and the content type.

A run's task id is derived from (schedule id, fire time) (services/schedules.py `run_task_id`):
Scheduler delivers at least once, and a second delivery of one fire time finds that task
already written (the task's put is conditional) and creates nothing.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import Record
from taskfn.stores.table import Table, time_key

SCHED = "SCHED#"
PAGE = 500


class ScheduleRecord(Record):
    """A function's schedule (GreenCloud's), or a fastlane job's (`kind` "job": its group
    and job, and either a cron or a one-shot time `at`, epoch seconds, UTC)."""

    id: str
    owner: str
    function_id: str = ""
    cron: str = ""
    timezone: str = "UTC"
    description: str = ""
    active: bool = True
    created_at: int
    payload_body: str = ""  # base64
    payload_query: str = "{}"  # JSON text of a str → str map
    payload_content_type: str = ""
    kind: str = "function"
    task_id: str = ""
    job_id: str = ""
    at: float = 0

    @property
    def query(self) -> dict[str, str]:
        return json.loads(self.payload_query or "{}")


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#SCHED"


def jobs_partition(owner: str) -> str:
    """fastlane jobs' schedules, beside the owner's groups (stores/jobs.py)."""
    return f"FL#{owner}#SCHED"


def function_partition(function_id: str) -> str:
    """The GSI2 partition of a function's schedules (keys only)."""
    return f"FUNC#{function_id}#SCHED"


class ScheduleStore:
    def __init__(self, table: Table):
        self.table = table

    def put_new(self, schedule: ScheduleRecord) -> bool:
        return self.table.put_new({"PK": owner_partition(schedule.owner),
                                   "SK": f"{SCHED}{schedule.id}",
                                   "GSI2PK": function_partition(schedule.function_id),
                                   "GSI2SK": time_key(schedule.created_at, schedule.id),
                                   **schedule.model_dump(mode="json")})

    def get(self, owner: str, schedule_id: str) -> ScheduleRecord | None:
        item = self.table.get(owner_partition(owner), f"{SCHED}{schedule_id}", consistent=True)
        return ScheduleRecord.model_validate(item) if item else None

    # --- fastlane jobs' schedules (their own partition; put with the job, stores/jobs.py) --

    def job_schedule(self, owner: str, schedule_id: str) -> ScheduleRecord | None:
        item = self.table.get(jobs_partition(owner), f"{SCHED}{schedule_id}", consistent=True)
        return ScheduleRecord.model_validate(item) if item else None

    def job_schedules(self, owner: str, at_most: int = PAGE) -> list[ScheduleRecord]:
        items, _ = self.table.query_items(jobs_partition(owner), prefix=SCHED, limit=at_most)
        return [ScheduleRecord.model_validate(item) for item in items]

    def delete_job_schedule(self, owner: str, schedule_id: str) -> bool:
        return self.table.delete(jobs_partition(owner), f"{SCHED}{schedule_id}",
                                 condition="#o = :o", names={"#o": "owner"},
                                 values={":o": owner})

    def of_owner(self, owner: str) -> list[ScheduleRecord]:
        """Every schedule of the owner, newest first: one strongly consistent Query (paged)."""
        found: list[ScheduleRecord] = []
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(owner_partition(owner), prefix=SCHED,
                                                  limit=PAGE, start=start)
            found += [ScheduleRecord.model_validate(item) for item in items]
            if start is None:
                return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    def of_function_page(self, function_id: str, *, page: int,
                         limit: int) -> tuple[list[ScheduleRecord], int]:
        """One page of a function's schedules, newest first, and how many it has: keys and a
        count from its GSI2 partition, then one BatchGetItem of the page's records."""
        keys, total = self.table.head_and_count("GSI2", function_partition(function_id),
                                                first=page * limit)
        wanted = [(key["PK"], key["SK"]) for key in keys[(page - 1) * limit:]]
        found = [ScheduleRecord.model_validate(item) for item in self.table.get_many(wanted)]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True), total

    def of_function(self, function_id: str) -> list[tuple[str, str]]:
        """(owner, schedule id) of every schedule of a function: its GSI2 partition's keys."""
        found: list[tuple[str, str]] = []
        cursor = None
        while True:
            page = self.table.query("GSI2", function_partition(function_id), limit=PAGE,
                                    cursor=cursor)
            found += [(str(item["PK"]).removeprefix("OWNER#").removesuffix("#SCHED"),
                       str(item["SK"]).removeprefix(SCHED)) for item in page.items]
            cursor = page.cursor
            if cursor is None:
                return found

    def update(self, owner: str, schedule_id: str,
               changes: dict[str, Any]) -> ScheduleRecord | None:
        """The schedule as written, or None when the owner has no such schedule."""
        ok, item = self.table.update(owner_partition(owner), f"{SCHED}{schedule_id}",
                                     set_values=changes, condition="attribute_exists(PK)")
        return ScheduleRecord.model_validate(item) if ok and item else None

    def delete(self, owner: str, schedule_id: str) -> bool:
        return self.table.delete(owner_partition(owner), f"{SCHED}{schedule_id}",
                                 condition="#o = :o", names={"#o": "owner"},
                                 values={":o": owner})



SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"


def target_input(schedule: ScheduleRecord) -> str:
    """RunScheduleFunction's event; Scheduler fills the fire time in at each fire (the run's
    task id is made of it). A job's says so (`kind`)."""
    fields = {"scheduleId": schedule.id, "owner": schedule.owner,
              "scheduledTime": SCHEDULED_TIME}
    if schedule.kind != "function":
        fields["kind"] = schedule.kind
    return json.dumps(fields)


def job_schedule_item(schedule: ScheduleRecord) -> dict[str, Any]:
    """A job's schedule as the item its enqueue's transaction puts."""
    return {"PK": jobs_partition(schedule.owner), "SK": f"{SCHED}{schedule.id}",
            **schedule.model_dump(mode="json")}


class SchedulerSchedules:
    """The EventBridge Scheduler side: one schedule per record, in taskfn's group, named by
    the record's id, whose target is RunScheduleFunction. With no target (the local stack,
    where moto keeps Scheduler's schedules but fires none and cannot check its requests'
signatures: local/scheduler.py fires from the records) it keeps none."""

    def __init__(self, client: Any, *, group: str, target_arn: str, role_arn: str):
        self.client = client
        self.group = group
        self.target_arn = target_arn
        self.role_arn = role_arn

    def _target(self, schedule: ScheduleRecord) -> dict[str, Any]:
        return {"Arn": self.target_arn, "RoleArn": self.role_arn,
                "Input": target_input(schedule), "RetryPolicy": {"MaximumRetryAttempts": 3}}

    def _fields(self, schedule: ScheduleRecord, expression: str) -> dict[str, Any]:
        fields = {"Name": schedule.id, "GroupName": self.group,
                  "ScheduleExpression": expression,
                  "ScheduleExpressionTimezone": schedule.timezone,
                  "State": "ENABLED" if schedule.active else "DISABLED",
                  "FlexibleTimeWindow": {"Mode": "OFF"},
                  "Description": schedule.description[:512],
                  "Target": self._target(schedule)}
        if expression.startswith("at("):  # a one-shot: gone once it has fired
            fields["ActionAfterCompletion"] = "DELETE"
        return fields

    @property
    def enabled(self) -> bool:
        return bool(self.target_arn)

    def create(self, schedule: ScheduleRecord, expression: str) -> None:
        if not self.enabled:
            return
        self.client.create_schedule(**self._fields(schedule, expression))

    def update(self, schedule: ScheduleRecord, expression: str) -> None:
        """UpdateSchedule replaces every field: the whole schedule is sent again."""
        if not self.enabled:
            return
        self.client.update_schedule(**self._fields(schedule, expression))

    def delete(self, schedule_id: str) -> None:
        if not self.enabled:
            return
        try:
            self.client.delete_schedule(Name=schedule_id, GroupName=self.group)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
