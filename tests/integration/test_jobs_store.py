"""fastlane's groups and jobs in the table (stores/jobs.py), against moto: a new group with
its words, counts and first job in one transaction; two racing creates make it once; reads
are Queries of the owner's own partitions, so another owner's groups are not there."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from taskfn import wiring
from taskfn.adapters.fastlane import words
from taskfn.stores.jobs import GroupRecord, GroupTaken, JobRecord, JobsStore


def store() -> JobsStore:
    return JobsStore(wiring.table())


def group(task_id: str, owner: str = "alice") -> GroupRecord:
    return GroupRecord(task_id=task_id, owner=owner, created_at=1, last_modified_at=1)


def job(task_id: str, job_id: str, owner: str = "alice") -> JobRecord:
    return JobRecord(job_id=job_id, task_id=task_id, owner=owner, created_at=2,
                     last_modified_at=2, image="ubuntu", command="echo hi")


def test_a_new_group_comes_with_its_words_counts_and_first_job(backend, calls):
    jobs = store()
    jobs.create_group_with_job(group("nightly-Report"), words("nightly-Report"),
                               job("nightly-Report", "j1"))
    assert jobs.add_job(job("nightly-Report", "j2"), 5)
    assert jobs.counts("alice") == {"groups": 1, "jobs": 2}
    assert jobs.group("alice", "nightly-Report").jobs_count == 2
    assert [j.job_id for j in jobs.jobs("alice", "nightly-Report")] == ["j1", "j2"]
    assert jobs.search("alice", frozenset({"report"})) == ["nightly-Report"]
    assert jobs.search("alice", frozenset({"nightly", "other"})) == ["nightly-Report"]
    assert jobs.search("alice", frozenset({"night"})) == []  # whole words only
    assert calls and not any(operation == "Scan" for operation, _ in calls)


def test_another_owner_s_groups_are_not_there(backend):
    jobs = store()
    jobs.create_group_with_job(group("shared-name"), words("shared-name"),
                               job("shared-name", "j1"))
    assert jobs.group("bob", "shared-name") is None
    assert jobs.search("bob", frozenset({"shared"})) == []
    assert jobs.groups_page("bob", page=1, per_page=10) == []
    assert not jobs.add_job(job("shared-name", "j9", owner="bob"), 5)  # no such group of his
    assert jobs.counts("bob") == {"groups": 0, "jobs": 0}


def test_two_racing_creates_of_one_group_make_it_once(backend):
    jobs = store()
    outcomes: list[str] = []

    def create(job_id: str) -> None:
        try:
            jobs.create_group_with_job(group("race"), words("race"), job("race", job_id))
            outcomes.append("created")
        except GroupTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=create, args=(f"j{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "taken"]
    assert jobs.counts("alice") == {"groups": 1, "jobs": 1}
    assert len(jobs.jobs("alice", "race")) == 1


def test_pages_of_groups_in_order(backend):
    jobs = store()
    for n in range(12):
        name = f"g{n:02d}"
        jobs.create_group_with_job(group(name), words(name), job(name, "j"))
    first = [g.task_id for g in jobs.groups_page("alice", page=1, per_page=10)]
    second = [g.task_id for g in jobs.groups_page("alice", page=2, per_page=10)]
    assert first == [f"g{n:02d}" for n in range(10)] and second == ["g10", "g11"]
    assert [g.task_id for g in jobs.groups("alice", ["g11", "g03", "nope"])] == ["g11", "g03"]


def test_a_job_id_is_written_once(backend):
    jobs = store()
    jobs.create_group_with_job(group("x"), words("x"), job("x", "j1"))
    with pytest.raises(ClientError):  # the whole transaction refused: nothing counted
        jobs.add_job(job("x", "j1"), 5)
    assert jobs.counts("alice") == {"groups": 1, "jobs": 1}
    assert jobs.group("alice", "x").jobs_count == 1
