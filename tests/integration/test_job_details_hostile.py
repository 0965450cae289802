"""A job's output and its webhooks' answers against the details view: each test the
attack, failing when it works."""

from __future__ import annotations

import json

from taskfn import ids, wiring
from taskfn.adapters.fastlane import Links, job_view
from taskfn.models import now_ns
from taskfn.services.jobs import JobService

from .helpers import ALICE
from .test_container_runs import enqueue, launched, runs, stopped  # noqa: F401

LAMBDA_ANSWER_MAX = 6 * 1024 * 1024


def test_job_details_of_control_character_output_fit_a_lambda_answer(runs):  # noqa: F811
    """A byte \\x01 is 6 bytes of JSON ("\\u0001"), and 7 once the body is a string in
    Lambda's answer: 20 executions x 2 streams x 64 KiB cut by bytes would be 15 MB of
    details. Cut by their encoded size, they fit Lambda's 6 MB answer."""
    service, runtime = runs
    jobs = JobService.from_env()
    job_id = enqueue("echo")
    job = jobs.jobs.job("alice", "group", job_id)
    ugly = "\x01" * (64 * 1024)
    for n in range(20):
        if n:
            now = now_ns()
            run = jobs._run(job, {}, ids.new_uuid7(now), now)
            assert jobs.jobs.add_execution(
                jobs._pointer(job, run.task_guid, run.task_guid, 1, now),
                wiring.tasks().item_for(run))
        guid = launched(service, job_id)
        service.on_event(stopped(runtime, guid, 0, out=ugly, err=ugly))
    job, executions = jobs.job_details(ALICE, "group", job_id)
    body = json.dumps(job_view(job, executions, Links("https://api.example.com")))
    answer = json.dumps({"statusCode": 200, "body": body})
    print("executions", len(executions), "body", len(body), "answer", len(answer))
    assert len(answer) <= LAMBDA_ANSWER_MAX, f"job details answer of {len(answer)} bytes"


def test_concurrent_webhook_answers_of_one_execution_are_all_counted(runs):  # noqa: F811
    """30 hooks of one execution answer at once (3 lists x 10, spread over concurrent
    deliveries): every answer is counted (a conditional write, tried again with jitter)."""
    from concurrent.futures import ThreadPoolExecutor

    from taskfn.services.hooks import dispatch_record
    from taskfn.stores.jobs import JobsStore

    job_id = enqueue("echo")
    store = JobsStore(wiring.table())
    (pointer,) = store.executions("alice", "group", job_id, limit=1)
    with ThreadPoolExecutor(10) as pool:
        landed = list(pool.map(lambda n: store.record_dispatch(
            pointer, dispatch_record(f"https://h/{n}", 200, "", {}), keep=3), range(30)))
    after = store.execution("alice", "group", job_id, pointer.execution_id)
    print("landed", sum(landed), "count", after.dispatch_count)
    assert all(landed) and after.dispatch_count == 30, f"{landed.count(False)} answers lost"
