"""Races between a job's own retry, a retry by hand, a cron fire and a stop: one run each
time, none left running (each test the race, failing when it is lost)."""

from __future__ import annotations

from taskfn import wiring
from taskfn.lifecycle import State
from taskfn.services.jobs import JobService

from .helpers import ALICE
from .test_container_runs import enqueue, launched, runs, stopped  # noqa: F401


def test_a_retry_between_a_runs_retry_write_and_its_next_pointer_makes_one_run(
        runs):  # noqa: F811
    """on_event writes the retry (task back to Pending, new execution id), then lists the
    next attempt's pointer; a retry_job in between reads the old attempt as the job's last.
    It must stop the task whichever attempt it is on, so only the retry's new run goes on."""
    service, runtime = runs
    job_id = enqueue("sh -c 'exit 3'", retries=1)
    guid = launched(service, job_id)
    jobs = JobService.from_env()
    jobs._runs = service
    real = service._next_execution

    def late(task, execution_id, now):
        jobs.retry_job(ALICE, "group", job_id)  # the user's retry lands in the gap
        return real(task, execution_id, now)

    service._next_execution = late
    assert service.on_event(stopped(runtime, guid, 3)) == "retrying"
    pointers = jobs.jobs.executions("alice", "group", job_id, limit=10)
    guids = sorted({p.task_guid for p in pointers})
    unfinished = [t.task_guid for t in wiring.tasks().get_many(guids)
                  if t.state in (State.PENDING, State.RUNNING)]
    assert len(unfinished) == 1, f"{len(unfinished)} runs go on: {unfinished}"


def test_a_cron_fire_racing_a_job_stop_does_not_leave_a_run(runs):  # noqa: F811
    """run_scheduled reads the job (still scheduled), then lists the new run; a stop_job in
    between removes the schedule and stops what it finds. The listing is conditional on the
    schedule, so the fire's run is not made."""
    import json as _json

    from taskfn.adapters.fastlane import parse_enqueue

    service, _ = runs
    jobs = JobService.from_env()
    jobs._runs = service
    payload = parse_enqueue(_json.dumps({"image": "alpine", "command": "sleep 600",
                                         "cron": "* * * * *"}).encode())
    job_id = jobs.enqueue(ALICE, "group", payload, request_ip="1.2.3.4").job_id
    schedule_id = jobs.jobs.job("alice", "group", job_id).schedule_id
    assert schedule_id
    store, real = jobs.jobs, jobs.jobs.add_execution

    def racing(pointer, item, **conditions):
        store.add_execution = real
        jobs.stop_job(ALICE, "group", job_id)  # the user stops the job meanwhile
        return real(pointer, item, **conditions)

    store.add_execution = racing
    run_id = jobs.run_scheduled(schedule_id, "alice", "2026-12-03T12:00:00Z")
    task = wiring.tasks().get(run_id) if run_id else None
    assert task is None or task.state not in (State.PENDING, State.RUNNING), \
        "a run of the stopped job goes on"
