"""fastlane's groups and jobs in the table (stores/jobs.py), against moto: a new group with
its words, counts and first job in one transaction; two racing creates make it once; reads
are Queries of the owner's own partitions, so another owner's groups are not there."""

from __future__ import annotations

import threading

import pytest

from taskfn import wiring
from taskfn.adapters.fastlane import words
from taskfn.stores.jobs import (
    ExecutionPointer,
    GroupRecord,
    JobRecord,
    JobsStore,
    JobWrite,
    Refused,
)


def store() -> JobsStore:
    return JobsStore(wiring.table())


def group(task_id: str, owner: str = "alice") -> GroupRecord:
    return GroupRecord(task_id=task_id, owner=owner, created_at=1, last_modified_at=1)


def job(task_id: str, job_id: str, owner: str = "alice", image: str = "ubuntu") -> JobRecord:
    return JobRecord(job_id=job_id, task_id=task_id, owner=owner, created_at=2,
                     last_modified_at=2, image=image, command="echo hi")


def create(jobs: JobsStore, task_id: str, job_id: str, owner: str = "alice") -> None:
    jobs.write(JobWrite(group=group(task_id, owner), new_group=True, words=words(task_id),
                        job=job(task_id, job_id, owner), new_job=True))


def add(jobs: JobsStore, task_id: str, job_id: str, owner: str = "alice", *,
        new_job: bool = True, image: str = "ubuntu") -> None:
    jobs.write(JobWrite(group=group(task_id, owner), new_group=False, words=frozenset(),
                        job=job(task_id, job_id, owner, image), new_job=new_job))


def test_a_new_group_comes_with_its_words_counts_and_first_job(backend, calls):
    jobs = store()
    create(jobs, "nightly-Report", "j1")
    add(jobs, "nightly-Report", "j2")
    assert jobs.counts("alice") == {"groups": 1, "jobs": 2}
    assert jobs.group("alice", "nightly-Report").jobs_count == 2
    assert [j for j, _ in jobs.jobs("alice", "nightly-Report")] == ["j1", "j2"]
    assert jobs.search("alice", frozenset({"report"})) == ["nightly-Report"]
    assert jobs.search("alice", frozenset({"nightly", "other"})) == ["nightly-Report"]
    assert jobs.search("alice", frozenset({"night"})) == []  # whole words only
    assert calls and not any(operation == "Scan" for operation, _ in calls)


def test_an_update_changes_the_definition_and_counts_nothing(backend):
    jobs = store()
    create(jobs, "g", "j1")
    add(jobs, "g", "j1", new_job=False, image="alpine:3")
    assert jobs.job("alice", "g", "j1").image == "alpine:3"
    assert jobs.counts("alice") == {"groups": 1, "jobs": 1}
    assert jobs.group("alice", "g").jobs_count == 1


def test_another_owner_s_groups_are_not_there(backend):
    jobs = store()
    create(jobs, "shared-name", "j1")
    assert jobs.group("bob", "shared-name") is None
    assert jobs.job("bob", "shared-name", "j1") is None
    assert jobs.search("bob", frozenset({"shared"})) == []
    assert jobs.groups_page("bob", page=1, per_page=10) == []
    with pytest.raises(Refused) as refused:  # no such group of his to add to
        add(jobs, "shared-name", "j9", owner="bob")
    assert refused.value.what == "group"
    assert jobs.counts("bob") == {"groups": 0, "jobs": 0}


def test_two_racing_creates_of_one_group_make_it_once(backend):
    jobs = store()
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def race(job_id: str) -> None:
        start.wait()
        try:
            create(jobs, "race", job_id)
            outcomes.append("created")
        except Refused as refused:
            outcomes.append(refused.what)

    threads = [threading.Thread(target=race, args=(f"j{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "group"]
    assert jobs.counts("alice") == {"groups": 1, "jobs": 1}
    assert len(jobs.jobs("alice", "race")) == 1


def test_pages_of_groups_in_order(backend):
    jobs = store()
    for n in range(12):
        create(jobs, f"g{n:02d}", "j")
    first = [g.task_id for g in jobs.groups_page("alice", page=1, per_page=10)]
    second = [g.task_id for g in jobs.groups_page("alice", page=2, per_page=10)]
    assert first == [f"g{n:02d}" for n in range(10)] and second == ["g10", "g11"]
    assert [g.task_id for g in jobs.groups("alice", ["g11", "g03", "nope"])] == ["g11", "g03"]


def test_a_job_id_is_written_once(backend):
    jobs = store()
    create(jobs, "x", "j1")
    with pytest.raises(Refused) as refused:  # the whole transaction refused: nothing counted
        add(jobs, "x", "j1")
    assert refused.value.what == "job"
    assert jobs.counts("alice") == {"groups": 1, "jobs": 1}
    assert jobs.group("alice", "x").jobs_count == 1


def test_executions_newest_first_and_only_of_an_existing_job(backend):
    jobs = store()
    create(jobs, "g", "j1")
    for n in range(3):
        pointer = ExecutionPointer(execution_id=f"0000000{n}", task_guid=f"t{n}", owner="alice",
                                   task_id="g", job_id="j1", created_at=n)
        assert jobs.add_execution(pointer, {"PK": f"TASK#t{n}", "SK": "TASK", "n": n})
    assert [p.execution_id for p in jobs.executions("alice", "g", "j1", limit=2)] == [
        "00000002", "00000001"]
    assert jobs.job("alice", "g", "j1").execution_count == 3
    assert jobs.job("alice", "g", "j1").last_execution_id == "00000002"
    orphan = ExecutionPointer(execution_id="00000009", task_guid="t9", owner="alice",
                              task_id="g", job_id="nope", created_at=9)
    assert not jobs.add_execution(orphan, {"PK": "TASK#t9", "SK": "TASK"})
    assert wiring.table().get("TASK#t9", "TASK") is None  # nothing of it was written
