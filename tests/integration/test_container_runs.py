"""A job's execution in its container, against moto (services/containers.py): launched by
the executor, ended by its back-end's events with one conditional write, whatever order and
however often they come; retried after a non-zero exit as a new execution; stopped by the
user or by its timeout. The back-end here records launches and stops; the output is in moto's
CloudWatch Logs, where ECS's awslogs driver (or the local back-end) puts it."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from taskfn import ids, lifecycle, wiring
from taskfn.adapters.fastlane import parse_enqueue
from taskfn.lifecycle import State
from taskfn.models import TaskRecord, now_ns
from taskfn.runtime.containers import Launch, LaunchRefused, log_stream, source_record
from taskfn.runtime.containers import state_change as ecs_event
from taskfn.services.containers import USER_STOPPED, ContainerRuns
from taskfn.services.executor import executor_cell_id
from taskfn.services.jobs import JobService
from taskfn.settings import get_settings
from taskfn.stores.jobs import JobsStore
from taskfn.stores.queue import TaskQueue

from .helpers import ALICE

CELL = "executor-test"


class FakeRuntime:
    name = "fake"

    def __init__(self) -> None:
        self.launches: list[Launch] = []
        self.stops: list[tuple[str, str]] = []
        self.refuse = ""

    def launch(self, launch: Launch) -> str:
        if self.refuse:
            raise LaunchRefused(self.refuse)
        self.launches.append(launch)
        return f"arn:aws:ecs:us-east-1:123456789012:task/jobs/t{len(self.launches)}"

    def stop(self, ref: str, reason: str) -> None:
        self.stops.append((ref, reason))


@pytest.fixture
def runs(backend) -> tuple[ContainerRuns, FakeRuntime]:
    settings = get_settings()
    logs = boto3.client("logs")  # the template's JobLogGroup, provisioned with the rest
    runtime = FakeRuntime()
    watch = TaskQueue(boto3.client("sqs"), settings.container_watch_queue_url)
    return ContainerRuns(wiring.tasks(), JobsStore(wiring.table()), wiring.blobs(),
                         wiring.task_queue(), watch, runtime, logs, settings), runtime


def enqueue(command: str = "echo hi", **fields) -> str:
    payload = parse_enqueue(json.dumps({"image": "alpine", "command": command,
                                        **fields}).encode())
    return JobService.from_env().enqueue(ALICE, "group", payload, request_ip="1.2.3.4").job_id


def launched(runs: ContainerRuns, job_id: str) -> str:
    """The job's current execution started and launched; its task guid."""
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    tasks = wiring.tasks()
    started = tasks.apply(pointer.task_guid, lifecycle.start(CELL, now_ns()))
    assert runs.launch(TaskRecord.model_validate(started.task), CELL) == "launched"
    return pointer.task_guid


def stopped(runtime: FakeRuntime, guid: str, exit_code: int | None, *, out: str = "",
            err: str = "", n: int = -1) -> dict:
    """The STOPPED event of launch n, its output written to its stream first."""
    index = n % len(runtime.launches)  # FakeRuntime names launch i "t<i + 1>"
    launch = runtime.launches[index]
    arn = f"arn:aws:ecs:us-east-1:123456789012:task/jobs/t{index + 1}"
    logs, group = boto3.client("logs"), get_settings().job_log_group
    logs.create_log_stream(logGroupName=group, logStreamName=log_stream(arn))
    lines = [source_record("stdout", x) for x in out.splitlines()] + [
        source_record("stderr", x) for x in err.splitlines()]
    if lines:
        logs.put_log_events(logGroupName=group, logStreamName=log_stream(arn), logEvents=[
            {"timestamp": int(time.time() * 1000), "message": m} for m in lines])
    return ecs_event(cluster_arn="c", task_arn=arn, launch=launch, last_status="STOPPED",
                     region="us-east-1", account="123456789012", time="t",
                     exit_code=exit_code, stop_code="EssentialContainerExited")


def test_a_stopped_event_completes_the_run_once_with_its_output(runs):
    service, runtime = runs
    guid = launched(service, enqueue())
    (launch,) = runtime.launches
    assert launch.argv == ("echo", "hi") and launch.execution_id == guid
    event = stopped(runtime, guid, 0, out="hi\nthere", err="careful")
    assert service.on_event(event) == "succeeded"
    task = wiring.tasks().get(guid)
    assert task.state is State.COMPLETED and not task.failed
    assert (task.exit_code, task.outcome, task.stdout, task.stderr) == (
        0, "succeeded", "hi\nthere", "careful")
    assert service.on_event(event) == "ignored"  # a repeat: nothing more written
    assert wiring.tasks().get(guid).updated_at == task.updated_at


def test_an_event_before_the_launch_was_recorded_still_ends_the_run(runs):
    service, runtime = runs
    job_id = enqueue()
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    wiring.tasks().apply(pointer.task_guid, lifecycle.start(CELL, now_ns()))
    runtime.launches.append(Launch(task_guid=pointer.task_guid,
                                   execution_id=pointer.execution_id, image="alpine",
                                   argv=("true",)))
    # The quick command's STOPPED comes while the executor has not yet written `launched`.
    assert service.on_event(stopped(runtime, pointer.task_guid, 0, n=0)) == "succeeded"
    assert wiring.tasks().get(pointer.task_guid).container_ref.endswith("/t1")


def test_a_non_zero_exit_is_retried_as_a_new_execution_and_a_late_event_is_dropped(runs):
    service, runtime = runs
    job_id = enqueue("sh -c 'exit 3'", retries=1)
    guid = launched(service, job_id)
    first = stopped(runtime, guid, 3, out="try 1")
    assert service.on_event(first) == "retrying"
    task = wiring.tasks().get(guid)
    assert task.state is State.PENDING and task.execution_id != guid
    assert task.retry_at > task.updated_at  # backs off: 2 s
    assert task.attempts[0]["exit_code"] == 3 and task.attempts[0]["stdout"] == "try 1"
    listed = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=5)
    assert [p.execution_id for p in listed] == [task.execution_id, guid]
    assert [p.attempt for p in listed] == [2, 1]
    assert service.on_event(first) == "ignored"  # the first launch's repeat: not this one's
    details = JobService.from_env().job_details(ALICE, "group", job_id)[1]
    assert [(e.state, e.exit_code, e.stdout) for e in details] == [
        (State.PENDING, None, ""), (State.COMPLETED, 3, "try 1")]


def test_a_user_stop_is_not_retried_and_says_so(runs):
    service, runtime = runs
    job_id = enqueue("sleep 600", retries=3)
    guid = launched(service, job_id)
    jobs = JobService.from_env()
    jobs._runs = service
    jobs.stop_job(ALICE, "group", job_id)
    assert runtime.stops == [(wiring.tasks().get(guid).container_ref,
                              "taskfn: stopped by user")]
    assert service.on_event(stopped(runtime, guid, 143)) == "stopped"
    task = wiring.tasks().get(guid)
    assert task.failed and task.failure_reason == USER_STOPPED and task.outcome == "stopped"


def test_a_pending_run_stopped_ends_at_once(runs):
    service, runtime = runs
    job_id = enqueue()
    jobs = JobService.from_env()
    jobs._runs = service
    jobs.stop_job(ALICE, "group", job_id)
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    task = wiring.tasks().get(pointer.task_guid)
    assert task.state is State.COMPLETED and task.outcome == "stopped"
    assert runtime.stops == []  # nothing was running


def test_the_timeout_watch_stops_a_due_run_and_waits_for_one_not_due(runs, calls):
    service, runtime = runs
    guid = launched(service, enqueue("sleep 600", timeout=1))
    body = json.dumps({"taskId": guid, "executionId": guid})
    time.sleep(1.1)
    assert service.on_watch(body) == "stopping"
    assert runtime.stops[-1][1] == "taskfn: timed out"
    assert wiring.tasks().get(guid).stop_requested == "timeout"
    assert service.on_event(stopped(runtime, guid, 143)) == "timedout"
    assert wiring.tasks().get(guid).failure_reason == "Job execution timed out after 1 seconds."
    assert service.on_watch(body) == "ended"
    other = launched(service, enqueue("sleep 600", timeout=900))
    calls.clear()
    assert service.on_watch(json.dumps({"taskId": other, "executionId": other})) == "waiting"
    (sent,) = [params for operation, params in calls if operation == "SendMessage"]
    assert 898 <= sent["DelaySeconds"] <= 900


def test_a_refused_launch_goes_back_to_pending_then_fails(runs):
    service, runtime = runs
    runtime.refuse = "RESOURCE:FARGATE"
    job_id = enqueue()
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    outcomes = []
    for _ in range(4):
        started = wiring.tasks().apply(pointer.task_guid, lifecycle.start(CELL, now_ns()))
        outcomes.append(service.launch(TaskRecord.model_validate(started.task), CELL))
    assert outcomes == ["rejected", "rejected", "rejected", "failed"]
    task = wiring.tasks().get(pointer.task_guid)
    assert task.failed and "RESOURCE:FARGATE" in task.failure_reason


def test_an_expired_job_is_not_launched(runs):
    service, runtime = runs
    job_id = enqueue(expiration=1000)
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    started = wiring.tasks().apply(pointer.task_guid, lifecycle.start(CELL, now_ns()))
    assert service.launch(TaskRecord.model_validate(started.task), CELL) == "expired"
    assert runtime.launches == []
    assert wiring.tasks().get(pointer.task_guid).outcome == "expired"


def test_the_executor_s_cell_is_a_built_in_one():
    assert executor_cell_id().startswith("executor-")


def test_a_stop_marked_while_the_event_was_decided_is_not_turned_into_a_retry(runs,
                                                                              monkeypatch):
    """The event's first read saw no stop; the user's stop lands before its write: the
    write is refused, and the event read again ends the run as stopped."""
    service, runtime = runs
    guid = launched(service, enqueue("sh -c 'exit 3'", retries=3))
    event = stopped(runtime, guid, 3)
    stale = wiring.tasks().get(guid, consistent=True)
    assert service.stop(stale, "user") == "stopping"
    real_get, reads = service.tasks.get, []

    def first_read_stale(*args, **kwargs):
        reads.append(1)
        return stale if len(reads) == 1 else real_get(*args, **kwargs)

    monkeypatch.setattr(service.tasks, "get", first_read_stale)
    assert service.on_event(event) == "stopped"
    task = wiring.tasks().get(guid)
    assert task.state is State.COMPLETED and task.outcome == "stopped"


def test_a_stop_read_before_the_launch_was_written_still_stops_the_container(runs):
    """stop read the task Pending; the executor then started and launched it: the stop's
    write is refused, it reads again and stops the container it now finds."""
    service, runtime = runs
    job_id = enqueue("sleep 600")
    (pointer,) = JobsStore(wiring.table()).executions("alice", "group", job_id, limit=1)
    pending = wiring.tasks().get(pointer.task_guid, consistent=True)
    launched(service, job_id)
    assert service.stop(pending, "user") == "stopping"
    assert runtime.stops and wiring.tasks().get(pointer.task_guid).stop_requested == "user"


def test_a_watch_message_that_is_not_one_is_dropped(runs):
    service, _ = runs
    for body in ("{}", "[]", "not json", '{"taskId": "x"}'):
        assert service.on_watch(body) == "ignored"


def test_a_job_stop_stops_every_unfinished_run_of_it(runs):
    """A cron job's runs can overlap: stopping the job stops them all, not just the newest."""
    service, runtime = runs
    job_id = enqueue("sleep 600")
    first = launched(service, job_id)
    jobs = JobService.from_env()
    jobs._runs = service
    job = jobs.jobs.job("alice", "group", job_id)
    now = now_ns()
    second = jobs._run(job, {}, ids.new_uuid7(now), now)
    assert jobs.jobs.add_execution(jobs._pointer(job, second.task_guid, second.task_guid, 1,
                                                 now), wiring.tasks().item_for(second))
    assert launched(service, job_id) == second.task_guid  # the newest: a second fire
    jobs.stop_job(ALICE, "group", job_id)
    refs = {wiring.tasks().get(guid).container_ref for guid in (first, second.task_guid)}
    assert {ref for ref, _ in runtime.stops} == refs and len(refs) == 2


def test_two_racing_retries_make_one_run(runs):
    service, runtime = runs
    job_id = enqueue("sh -c 'exit 3'")
    guid = launched(service, job_id)
    assert service.on_event(stopped(runtime, guid, 3)) == "failed"
    jobs = JobService.from_env()
    jobs._runs = service
    store, real = jobs.jobs, jobs.jobs.add_execution

    def racing(pointer, item, **conditions):
        store.add_execution = real  # the other retry runs to its end in between
        jobs.retry_job(ALICE, "group", job_id)
        return real(pointer, item, **conditions)

    store.add_execution = racing
    jobs.retry_job(ALICE, "group", job_id)
    listed = store.executions("alice", "group", job_id, limit=5)
    assert len(listed) == 2 and listed[1].execution_id == guid
    assert store.job("alice", "group", job_id).execution_count == 2
