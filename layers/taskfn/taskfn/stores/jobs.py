"""fastlane's task groups, jobs and executions (docs/design/jobs-api.md, §1): every key holds
the owner, so another owner's group, job or execution is simply not there.

  "FL#<owner>#TASKS" / "T#<task id>"       a group (a fastlane task), by id
  "FL#<owner>#TASKS" / "COUNT"             the owner's counts of groups and jobs
  "FL#<owner>#W#<word>" / "T#<task id>"    the whole-word search index, written once with
                                           the group (a group's id never changes)
  "FL#<owner>#T#<task id>" / "J#<job id>"  a job of the group
  "FL#<owner>#J#<task id>#<job id>" / "X#<execution id>"
                                           an execution of the job: which attempt of which
                                           task record it is (UUIDv7 ids: newest last)
  "FL#<owner>#RUN" / "X#<execution id>"    an execution whose container runs now (/status),
                                           kept by the stream's reaction, expired by TTL
  "FL#<owner>#BUDGET" / "<kind>#<hour>"    what the owner's hooks sent in that hour
                                           (webhook, email), expired by TTL

An enqueue is one TransactWriteItems: the group (created with its words and count, or
touched), the job (created or updated), the execution's pointer and its task record. Two
racing enqueues of a new group make it once: the loser's transaction is refused at the
group, and it tries again into the group that now exists.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import Record
from taskfn.stores.table import Table, to_item

COUNT = "COUNT"
GROUP, JOB, EXECUTION = "T#", "J#", "X#"
SEARCH_KEYS_MAX = 10_000  # a word's groups a search reads at most
JOBS_READ_MAX = 10_000  # a group's jobs its details list at most


class GroupRecord(Record):
    task_id: str
    owner: str
    created_at: int
    last_modified_at: int
    jobs_count: int = 0


class JobRecord(Record):
    """A job's definition as it was last enqueued (POST or PUT), and how many executions it
    has had. Run state lives in the executions' task records, never here."""

    job_id: str
    task_id: str
    owner: str
    created_at: int
    last_modified_at: int
    image: str
    command: str
    envs_json: str = "{}"
    metadata_json: str = "{}"  # the client's own metadata (fastlane's metadata.custom)
    webhooks_json: str = "{}"
    notify_json: str = "{}"
    dns_json: str = "[]"
    retries: int = 0
    timeout: int = 1800
    expiration: float = 0
    cron: str = ""
    schedule_id: str = ""
    request_ip: str = ""
    execution_count: int = 0
    last_execution_id: str = ""
    # The API's base URL as the enqueue's request named it: the links in the job's webhooks
    # and e-mails, which are sent by no request.
    links_base: str = ""


# A job's definition: what an upsert replaces (the rest is the job's history).
DEFINITION = ("image", "command", "envs_json", "metadata_json", "webhooks_json",
              "notify_json", "dns_json", "retries", "timeout", "expiration", "cron",
              "schedule_id", "request_ip", "links_base")


class ExecutionPointer(Record):
    """An execution of a job: attempt `attempt` (from 1) of task record `task_guid`."""

    execution_id: str
    task_guid: str
    attempt: int = 1
    owner: str
    task_id: str
    job_id: str
    created_at: int
    # The execution's last webhook answers (fastlane's metadata.webhookDispatch), as JSON
    # text: they hold what a user's server answered, which a DynamoDB map may not take.
    webhook_dispatch_json: str = "[]"
    dispatch_count: int = 0

    @property
    def webhook_dispatch(self) -> list[dict[str, Any]]:
        return json.loads(self.webhook_dispatch_json)


class RunningContainer(Record):
    """An execution whose container runs: what /status lists of it."""

    owner: str
    execution_id: str
    task_id: str
    job_id: str
    container_ref: str
    expires_at: int  # the table's TTL: past the run's timeout, should its end be missed


GROUP_ID_MAX = 200


def valid_group_id(task_id: str) -> bool:
    """A group (fastlane task) id: 1-200 characters, none of them '#' (the keys' separator),
    '/' (the URLs') or a control character."""
    return 0 < len(task_id) <= GROUP_ID_MAX and not any(
        c in "#/" or ord(c) < 32 or 127 <= ord(c) < 160 for c in task_id)


def groups_partition(owner: str) -> str:
    return f"FL#{owner}#TASKS"


def word_partition(owner: str, word: str) -> str:
    return f"FL#{owner}#W#{word}"


def jobs_partition(owner: str, task_id: str) -> str:
    return f"FL#{owner}#T#{task_id}"


def budget_partition(owner: str) -> str:
    return f"FL#{owner}#BUDGET"


def running_partition(owner: str) -> str:
    return f"FL#{owner}#RUN"


def executions_partition(owner: str, task_id: str, job_id: str) -> str:
    return f"FL#{owner}#J#{task_id}#{job_id}"


@dataclass(frozen=True)
class JobWrite:
    """What one enqueue writes. `new_group`/`new_job` say whether each is created (its key
    must be free) or changed (it must exist); `pointer` and `task_item` are the execution it
    starts, None for a scheduled job."""

    group: GroupRecord
    new_group: bool
    words: frozenset[str]
    job: JobRecord
    new_job: bool
    pointer: ExecutionPointer | None = None
    task_item: dict[str, Any] | None = None
    schedule_item: dict[str, Any] | None = None  # a scheduled job's (stores/schedules.py)


class Refused(Exception):
    """A write found the group or job not as it was read (created or removed meanwhile):
    read again and retry. `what` names it."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class JobsStore:
    def __init__(self, table: Table):
        self.table = table

    # --- writes ------------------------------------------------------------------------

    def write(self, plan: JobWrite) -> None:
        """The enqueue's one transaction. Raises Refused("group" | "job") when the group or
        job is not in the state the plan was made for."""
        owner, group = plan.group.owner, plan.group
        items = [self._group_item(plan), self._job_item(plan)]
        names = ["group", "job"]
        if plan.new_group or plan.new_job:
            items.append(self._count_item(plan))
            names.append("count")
        if plan.new_group:
            items += [{"Put": {"TableName": self.table.name, "Item": to_item({
                "PK": word_partition(owner, word), "SK": GROUP + group.task_id,
                "task_id": group.task_id})}} for word in sorted(plan.words)]
            names += ["word"] * len(plan.words)
        if plan.pointer is not None:
            items.append(self._pointer_put(plan.pointer))
            names.append("pointer")
        for name, item in (("task", plan.task_item), ("schedule", plan.schedule_item)):
            if item is not None:
                items.append({"Put": {"TableName": self.table.name, "Item": to_item(item),
                                      "ConditionExpression": "attribute_not_exists(PK)"}})
                names.append(name)
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            refused = _refused_items(error)
            for what in ("group", "job"):
                if names.index(what) in refused:
                    raise Refused(what) from error
            raise

    def add_execution(self, pointer: ExecutionPointer, task_item: dict[str, Any] | None,
                      *, after: str | None = None, scheduled: str | None = None,
                      unless_scheduled: bool = False) -> bool:
        """A new execution of an existing job: its pointer and the job's count, with the
        task record of a new run (the retry route) or without (the next attempt of a run),
        in one transaction; False when the job is gone, the execution already listed,
        (with `after`) the job's last execution is no longer `after`, or (with `scheduled`)
        the job no longer has that schedule (a stop or PUT removed it meanwhile).
        `unless_scheduled`: the `after` condition holds only for a job without a schedule
        (a scheduled job's runs overlap, and nothing retries it by hand)."""
        items = [self._execution_counted(pointer, after, scheduled, unless_scheduled),
                 self._pointer_put(pointer)]
        if task_item is not None:
            items.append({"Put": {"TableName": self.table.name, "Item": to_item(task_item),
                                  "ConditionExpression": "attribute_not_exists(PK)"}})
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _refused_items(error) & {0, 1}:
                return False
            raise
        return True

    def record_dispatch(self, pointer: ExecutionPointer, record: dict[str, Any], *,
                        keep: int, tries: int = 64) -> bool:
        """A webhook answer added to the execution's last `keep`, conditional on the count
        read (two hooks of one execution answering at once both land); False when the
        execution is gone or the count kept moving."""
        key = {"PK": executions_partition(pointer.owner, pointer.task_id, pointer.job_id),
               "SK": EXECUTION + pointer.execution_id}
        for attempt in range(tries):
            item = self.table.get(key["PK"], key["SK"], consistent=True)
            if item is None:
                return False
            current = ExecutionPointer.model_validate(item)
            kept = [*current.webhook_dispatch, record][-keep:]
            try:
                self.table.client.update_item(
                    TableName=self.table.name, Key=to_item(key),
                    UpdateExpression="SET #d = :d, #n = :next",
                    ConditionExpression="attribute_exists(PK) AND "
                                        "(#n = :n OR attribute_not_exists(#n))",
                    ExpressionAttributeNames={"#d": "webhook_dispatch_json",
                                              "#n": "dispatch_count"},
                    ExpressionAttributeValues=to_item({
                        ":d": json.dumps(kept), ":n": current.dispatch_count,
                        ":next": current.dispatch_count + 1}))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != \
                        "ConditionalCheckFailedException":
                    raise
                # apart from the others racing here, further each time (one wins a round)
                time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 20)))
                continue
            return True
        return False

    def unschedule(self, owner: str, task_id: str, job_id: str, schedule_id: str) -> bool:
        """The job no longer scheduled, if `schedule_id` is still its schedule."""
        ok, _ = self.table.update(jobs_partition(owner, task_id), JOB + job_id,
                                  set_values={"schedule_id": ""}, condition="#s = :c_s",
                                  condition_names={"#s": "schedule_id"},
                                  condition_values={"s": schedule_id})
        return ok

    def _group_item(self, plan: JobWrite) -> dict[str, Any]:
        group = plan.group
        key = {"PK": groups_partition(group.owner), "SK": GROUP + group.task_id}
        if plan.new_group:
            return {"Put": {"TableName": self.table.name,
                            "Item": to_item({**key, **group.model_dump(mode="json"),
                                             "jobs_count": 1}),
                            "ConditionExpression": "attribute_not_exists(PK)"}}
        update = "SET #m = :at" + (" ADD #n :one" if plan.new_job else "")
        names = {"#m": "last_modified_at", **({"#n": "jobs_count"} if plan.new_job else {})}
        values = {":at": plan.job.last_modified_at, **({":one": 1} if plan.new_job else {})}
        return {"Update": {"TableName": self.table.name, "Key": to_item(key),
                           "UpdateExpression": update,
                           "ConditionExpression": "attribute_exists(PK)",
                           "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": to_item(values)}}

    def _count_item(self, plan: JobWrite) -> dict[str, Any]:
        added = {"groups": int(plan.new_group), "jobs": int(plan.new_job)}
        names = {f"#{name[0]}": name for name, count in added.items() if count}
        key = to_item({"PK": groups_partition(plan.group.owner), "SK": COUNT})
        return {"Update": {"TableName": self.table.name, "Key": key,
                           "UpdateExpression": "ADD " + ", ".join(
                               f"{alias} :one" for alias in names),
                           "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": to_item({":one": 1})}}

    def _job_item(self, plan: JobWrite) -> dict[str, Any]:
        job = plan.job
        if plan.new_job:
            return {"Put": {"TableName": self.table.name, "Item": to_item({
                "PK": jobs_partition(job.owner, job.task_id), "SK": JOB + job.job_id,
                **job.model_dump(mode="json")}),
                "ConditionExpression": "attribute_not_exists(PK)"}}
        values = job.model_dump(mode="json", include={*DEFINITION, "last_modified_at"})
        names = {f"#d{i}": name for i, name in enumerate(values)}
        sets = [f"#d{i} = :d{i}" for i in range(len(values))]
        bound = {f":d{i}": value for i, value in enumerate(values.values())}
        update = "SET " + ", ".join(sets)
        if plan.pointer is not None:
            names |= {"#x": "execution_count", "#l": "last_execution_id"}
            bound |= {":one": 1, ":last": plan.pointer.execution_id}
            update = f"SET {', '.join(sets)}, #l = :last ADD #x :one"
        return {"Update": {"TableName": self.table.name,
                           "Key": to_item({"PK": jobs_partition(job.owner, job.task_id),
                                           "SK": JOB + job.job_id}),
                           "UpdateExpression": update,
                           "ConditionExpression": "attribute_exists(PK)",
                           "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": to_item(bound)}}

    def _execution_counted(self, pointer: ExecutionPointer, after: str | None,
                           scheduled: str | None, unless_scheduled: bool) -> dict[str, Any]:
        condition, values = "attribute_exists(PK)", {":one": 1, ":last": pointer.execution_id}
        names = {"#x": "execution_count", "#l": "last_execution_id"}
        if after is not None and unless_scheduled:
            condition += " AND (#l = :after OR (attribute_exists(#s) AND #s <> :none))"
            values[":after"], values[":none"], names["#s"] = after, "", "schedule_id"
        elif after is not None:
            condition += " AND #l = :after"
            values[":after"] = after
        if scheduled is not None:
            condition += " AND #s = :schedule"
            values[":schedule"], names["#s"] = scheduled, "schedule_id"
        return {"Update": {"TableName": self.table.name,
                           "Key": to_item({"PK": jobs_partition(pointer.owner, pointer.task_id),
                                           "SK": JOB + pointer.job_id}),
                           "UpdateExpression": "SET #l = :last ADD #x :one",
                           "ConditionExpression": condition,
                           "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": to_item(values)}}

    def _pointer_put(self, pointer: ExecutionPointer) -> dict[str, Any]:
        return {"Put": {"TableName": self.table.name, "Item": to_item({
            "PK": executions_partition(pointer.owner, pointer.task_id, pointer.job_id),
            "SK": EXECUTION + pointer.execution_id, **pointer.model_dump(mode="json")}),
            "ConditionExpression": "attribute_not_exists(PK)"}}

    # --- the running set (/status) ------------------------------------------------------

    def spend(self, owner: str, kind: str, window: int, limit: int, expires_at: int) -> bool:
        """One more of the owner's `kind` (webhook, email) in this window of time, if fewer
        than `limit` were spent in it: one conditional ADD, so racing deliveries never
        overspend. The counter expires with its window (the table's TTL)."""
        spent, _ = self.table.update(
            budget_partition(owner), f"{kind}#{window}", set_values={"expires_at": expires_at},
            add_values={"spent": 1}, condition="attribute_not_exists(#s) OR #s < :c_limit",
            condition_values={"limit": limit}, condition_names={"#s": "spent"})
        return spent

    def running_started(self, run: RunningContainer) -> None:
        """An execution's container is running; idempotent (a stream record read twice)."""
        self.table.client.put_item(TableName=self.table.name, Item=to_item({
            "PK": running_partition(run.owner), "SK": EXECUTION + run.execution_id,
            **run.model_dump(mode="json")}))

    def running_ended(self, owner: str, execution_id: str) -> None:
        self.table.client.delete_item(TableName=self.table.name, Key=to_item({
            "PK": running_partition(owner), "SK": EXECUTION + execution_id}))

    def running(self, owner: str, *, limit: int) -> list[RunningContainer]:
        items, _ = self.table.query_items(running_partition(owner), prefix=EXECUTION,
                                          limit=limit)
        return [RunningContainer.model_validate(i) for i in items]

    # --- reads -------------------------------------------------------------------------

    def group(self, owner: str, task_id: str) -> GroupRecord | None:
        item = self.table.get(groups_partition(owner), GROUP + task_id, consistent=True)
        return GroupRecord.model_validate(item) if item else None

    def counts(self, owner: str) -> dict[str, int]:
        item = self.table.get(groups_partition(owner), COUNT) or {}
        return {"groups": int(item.get("groups", 0)), "jobs": int(item.get("jobs", 0))}

    def groups_page(self, owner: str, *, page: int, per_page: int) -> list[GroupRecord]:
        """One page of the owner's groups, by task id (Query pages of the partition)."""
        items, _ = self._read(groups_partition(owner), page * per_page)
        return [GroupRecord.model_validate(i) for i in items[(page - 1) * per_page:]]

    def job(self, owner: str, task_id: str, job_id: str) -> JobRecord | None:
        item = self.table.get(jobs_partition(owner, task_id), JOB + job_id, consistent=True)
        return JobRecord.model_validate(item) if item else None

    def jobs(self, owner: str, task_id: str) -> list[tuple[str, int]]:
        """The group's jobs as (job id, created at), oldest first: only those two attributes
        travel back."""
        items, _ = self._read(jobs_partition(owner, task_id), JOBS_READ_MAX, prefix=JOB,
                              attributes=("job_id", "created_at"))
        return sorted(((str(i["job_id"]), int(i["created_at"])) for i in items),
                      key=lambda job: (job[1], job[0]))

    def jobs_by_key(self, owner: str, keys: list[tuple[str, str]]) -> list[JobRecord]:
        """The owner's jobs of these (task id, job id): one BatchGetItem per 100."""
        items = self.table.get_many([(jobs_partition(owner, t), JOB + j) for t, j in keys])
        return [JobRecord.model_validate(item) for item in items]

    def executions(self, owner: str, task_id: str, job_id: str, *,
                   limit: int) -> list[ExecutionPointer]:
        """The job's `limit` newest executions, newest first (one Query)."""
        items, _ = self.table.query_items(executions_partition(owner, task_id, job_id),
                                          prefix=EXECUTION, limit=limit, newest_first=True)
        return [ExecutionPointer.model_validate(i) for i in items]

    def execution_tasks(self, owner: str, task_id: str, job_id: str, *,
                        at_most: int) -> list[str]:
        """The task guids of the job's `at_most` newest executions, newest first, each once
        (Queries of the guids alone, page after page)."""
        guids: list[str] = []
        start: dict[str, Any] | None = None
        pk, read = executions_partition(owner, task_id, job_id), 0
        while read < at_most:
            items, start = self.table.query_items(pk, prefix=EXECUTION, newest_first=True,
                                                  limit=min(1000, at_most - read),
                                                  start=start, attributes=("task_guid",))
            read += len(items)
            guids += [g for g in (str(i["task_guid"]) for i in items) if g not in guids]
            if start is None:
                break
        return guids

    def execution(self, owner: str, task_id: str, job_id: str,
                  execution_id: str) -> ExecutionPointer | None:
        item = self.table.get(executions_partition(owner, task_id, job_id),
                              EXECUTION + execution_id, consistent=True)
        return ExecutionPointer.model_validate(item) if item else None

    def search(self, owner: str, words: frozenset[str]) -> list[str]:
        """The task ids of the owner's groups with any of `words`, sorted, each once."""
        found: set[str] = set()
        for word in sorted(words):
            items, _ = self._read(word_partition(owner, word), SEARCH_KEYS_MAX)
            found.update(str(item["task_id"]) for item in items)
        return sorted(found)

    def groups(self, owner: str, task_ids: list[str]) -> list[GroupRecord]:
        items = self.table.get_many([(groups_partition(owner), GROUP + t) for t in task_ids])
        by_id = {str(i["task_id"]): GroupRecord.model_validate(i) for i in items}
        return [by_id[t] for t in task_ids if t in by_id]

    def _read(self, pk: str, at_most: int, *, prefix: str = GROUP,
              attributes: tuple[str, ...] = ()
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(found) < at_most:
            items, start = self.table.query_items(pk, prefix=prefix,
                                                  limit=min(1000, at_most - len(found)),
                                                  start=start, attributes=attributes)
            found += items
            if start is None:
                break
        return found, start


def _refused_items(error: ClientError) -> set[int]:
    """The positions of a cancelled transaction's items that failed their conditions."""
    reasons = error.response.get("CancellationReasons") or []
    return {n for n, reason in enumerate(reasons)
            if reason.get("Code") == "ConditionalCheckFailed"}
