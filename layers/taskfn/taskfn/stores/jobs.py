"""fastlane's task groups and jobs (docs/design/jobs-api.md, §1): every key holds the owner,
so another owner's group or job is simply not there.

  "FL#<owner>#TASKS" / "T#<task id>"      a group (a fastlane task), oldest first
  "FL#<owner>#TASKS" / "COUNT"            the owner's counts of groups and jobs
  "FL#<owner>#W#<word>" / "T#<task id>"   the whole-word search index, written once with
                                          the group (a group's id never changes)
  "FL#<owner>#T#<task id>" / "J#<job id>" a job of the group

A new group, its words, the count and its first job are one TransactWriteItems: two racing
enqueues of a new group make it once (the loser's transaction is refused and it retries as
an enqueue into an existing group).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import Record
from taskfn.stores.table import Table, to_item

COUNT = "COUNT"
GROUP, JOB = "T#", "J#"
SEARCH_KEYS_MAX = 10_000  # a word's groups a search reads at most


class GroupRecord(Record):
    task_id: str
    owner: str
    created_at: int
    last_modified_at: int
    jobs_count: int = 0


class JobRecord(Record):
    job_id: str
    task_id: str
    owner: str
    created_at: int
    last_modified_at: int
    image: str
    command: str
    envs_json: str = "{}"
    metadata_json: str = "{}"
    retries: int = 0
    timeout: int = 1800
    request_ip: str = ""


def groups_partition(owner: str) -> str:
    return f"FL#{owner}#TASKS"


def word_partition(owner: str, word: str) -> str:
    return f"FL#{owner}#W#{word}"


def jobs_partition(owner: str, task_id: str) -> str:
    return f"FL#{owner}#T#{task_id}"


class GroupTaken(Exception):
    """The group was created meanwhile by another request: enqueue into it instead."""


class JobsStore:
    def __init__(self, table: Table):
        self.table = table

    # --- writes ------------------------------------------------------------------------

    def create_group_with_job(self, group: GroupRecord, words: frozenset[str],
                              job: JobRecord) -> None:
        """One transaction: the group (if it does not exist), its words, the counts, the job."""
        owner = group.owner
        puts = [
            {"Put": {"TableName": self.table.name, "Item": to_item({
                "PK": groups_partition(owner), "SK": GROUP + group.task_id,
                **group.model_dump(mode="json"), "jobs_count": 1}),
                "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Update": {"TableName": self.table.name,
                        "Key": to_item({"PK": groups_partition(owner), "SK": COUNT}),
                        "UpdateExpression": "ADD #g :one, #j :one",
                        "ExpressionAttributeNames": {"#g": "groups", "#j": "jobs"},
                        "ExpressionAttributeValues": to_item({":one": 1})}},
            self._job_put(job),
            *({"Put": {"TableName": self.table.name, "Item": to_item({
                "PK": word_partition(owner, word), "SK": GROUP + group.task_id,
                "task_id": group.task_id})}} for word in sorted(words)),
        ]
        try:
            self.table.client.transact_write_items(TransactItems=puts)
        except ClientError as error:
            if _first_refused(error):
                raise GroupTaken(group.task_id) from error
            raise

    def add_job(self, job: JobRecord, at_ns: int) -> bool:
        """A new job in an existing group, and the counts; False when the group is gone."""
        owner = job.owner
        try:
            self.table.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self.table.name,
                            "Key": to_item({"PK": groups_partition(owner),
                                            "SK": GROUP + job.task_id}),
                            "UpdateExpression": "SET #m = :at ADD #n :one",
                            "ConditionExpression": "attribute_exists(PK)",
                            "ExpressionAttributeNames": {"#m": "last_modified_at",
                                                         "#n": "jobs_count"},
                            "ExpressionAttributeValues": to_item({":at": at_ns, ":one": 1})}},
                {"Update": {"TableName": self.table.name,
                            "Key": to_item({"PK": groups_partition(owner), "SK": COUNT}),
                            "UpdateExpression": "ADD #j :one",
                            "ExpressionAttributeNames": {"#j": "jobs"},
                            "ExpressionAttributeValues": to_item({":one": 1})}},
                self._job_put(job),
            ])
        except ClientError as error:
            if _first_refused(error):
                return False
            raise
        return True

    def _job_put(self, job: JobRecord) -> dict[str, Any]:
        return {"Put": {"TableName": self.table.name, "Item": to_item({
            "PK": jobs_partition(job.owner, job.task_id), "SK": JOB + job.job_id,
            **job.model_dump(mode="json")}),
            "ConditionExpression": "attribute_not_exists(PK)"}}

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

    def jobs(self, owner: str, task_id: str) -> list[JobRecord]:
        items, _ = self._read(jobs_partition(owner, task_id), SEARCH_KEYS_MAX, prefix=JOB)
        return [JobRecord.model_validate(i) for i in items]

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

    def _read(self, pk: str, at_most: int, *, prefix: str = GROUP
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        found: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(found) < at_most:
            items, start = self.table.query_items(pk, prefix=prefix,
                                                  limit=min(1000, at_most - len(found)),
                                                  start=start)
            found += items
            if start is None:
                break
        return found, start


def _first_refused(error: ClientError) -> bool:
    """Whether a cancelled transaction's first item (the group, in both writes) failed its
    condition."""
    reasons = error.response.get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"
