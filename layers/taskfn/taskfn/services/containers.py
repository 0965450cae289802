"""A fastlane job's execution in its container (docs/design/jobs-api.md §3): launched by the
executor, watched for its timeout, stopped on request, and completed from the back-end's own
"ECS Task State Change" event, never by waiting. Each launch runs on a cell of its own
(`container:<execution id>`), so whatever concerns an earlier launch (a late event, a stop)
can never write to a later one: every write is conditional on that cell."""

from __future__ import annotations

import json
import logging
import os
import shlex
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from taskfn import aws, ids, lifecycle, wiring
from taskfn.adapters.fastlane import FINISHED_WORDS
from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.lifecycle import SECOND_NS, RetryLimitReached, State, Transition
from taskfn.models import CONTAINER_CELL, TaskRecord, now_ns
from taskfn.runtime.containers import (
    ContainerEvent,
    ContainerRuntime,
    Launch,
    LaunchRefused,
    installed,
    log_stream,
    parse_event,
    read_outputs,
)
from taskfn.settings import Settings, get_settings
from taskfn.stores.blobs import BlobStore, attempt_key
from taskfn.stores.jobs import ExecutionPointer, JobsStore
from taskfn.stores.queue import TaskQueue
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

# fastlane's own texts for the ends a command does not decide by its exit.
USER_STOPPED = "User stopped job execution manually."
NO_RUNTIME = "container runtime not configured"
WATCH_HOP_S = 900  # SQS's longest delay: a longer timeout is watched in hops
STOP_TRIES = 3  # a write whose record changed meanwhile is decided again, this often


def container_cell(execution_id: str) -> str:
    return CONTAINER_CELL + execution_id


def timed_out_text(seconds: int) -> str:
    return f"Job execution timed out after {seconds} seconds."


def expired_text(expiration: float, started_at_ns: int) -> str:
    def iso(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()

    return (f"Job was supposed to be done before {iso(expiration)}, but was started at "
            f"{iso(started_at_ns / SECOND_NS)}.")


@dataclass(frozen=True)
class Ending:
    """How an execution ended: fastlane's outcome, whether the task failed, why, and whether
    another attempt follows (a non-zero exit with retries left, and only that)."""

    outcome: str
    failed: bool
    reason: str = ""
    retry: bool = False


def ending_of(task: TaskRecord, event: ContainerEvent) -> Ending:
    """The one table of how a STOPPED event ends an execution: a stop asked by the user or by
    the timeout decides first, then the exit code; a container that never ran its command
    (no exit code: a bad image, no capacity) failed with ECS's reason."""
    if task.stop_requested == "user":
        return Ending("stopped", True, USER_STOPPED)
    if task.stop_requested == "timeout":
        return Ending("timedout", True, timed_out_text(task.timeout))
    if event.exit_code == 0:
        return Ending("succeeded", False)
    if event.exit_code is None:
        reason = event.stopped_reason or event.stop_code or "the container did not run"
        return Ending("failed", True, f"the container stopped without an exit code: {reason}")
    return Ending("failed", True, f"exit code {event.exit_code}",
                  retry=lifecycle.retries_left(task.model_dump()))


class ContainerRuns:
    def __init__(self, tasks: TaskStore, jobs: JobsStore, blobs: BlobStore, queue: TaskQueue,
                 watch: TaskQueue | None, runtime: ContainerRuntime | None, logs: Any,
                 settings: Settings):
        self.tasks = tasks
        self.jobs = jobs
        self.blobs = blobs
        self.queue = queue
        self.watch = watch
        self.runtime = runtime
        self.logs = logs
        self.settings = settings

    @classmethod
    def from_env(cls) -> ContainerRuns:
        settings = get_settings()
        watch = TaskQueue(aws.LazyClient("sqs"), settings.container_watch_queue_url) \
            if settings.container_watch_queue_url else None
        return cls(wiring.tasks(), JobsStore(wiring.table()), wiring.blobs(),
                   wiring.task_queue(), watch, runtime_of(settings),
                   aws.LazyClient("logs"), settings)

    # --- the executor's part ---------------------------------------------------------------

    def launch(self, task: TaskRecord, cell_id: str) -> str:
        """A job's run that the executor has just started on `cell_id`: start its container
        and hand the task to the container's cell. What happens to it then is told by its
        events. Returns what happened, for the log."""
        guid, now = task.task_guid, now_ns()
        if task.expiration and task.started_at / SECOND_NS > task.expiration:
            return self._write(guid, lifecycle.complete(
                cell_id, now, failed=True,
                failure_reason=expired_text(task.expiration, task.started_at),
                extra=self._answer(task, "expired", None)), "expired")
        if self.runtime is None:
            return self._write(guid, lifecycle.complete(
                cell_id, now, failed=True, failure_reason=NO_RUNTIME,
                extra=self._answer(task, "failed", None)), "failed")
        execution_id = task.execution_id or guid
        launch = Launch(task_guid=guid, execution_id=execution_id, image=task.image,
                        argv=tuple(shlex.split(task.command)), envs=dict(task.envs or {}),
                        timeout_s=task.timeout)
        try:
            ref = self.runtime.launch(launch)
        except LaunchRefused as refused:
            return self._refused(task, str(refused))
        cell = container_cell(execution_id)
        try:
            self.tasks.apply(guid, lifecycle.launched(cell_id, cell, now_ns(), {
                "container_ref": ref, "container_status": "PROVISIONING"}))
        except RunningOnDifferentCell:
            pass  # its own event got there first (a quick command) and moved it: fine
        except (InvalidStateTransition, NotFound):
            # Stopped, cancelled or deleted meanwhile: the container must not run on.
            logger.info("task %s ended while its container started: stopping it", guid)
            self.runtime.stop(ref, "taskfn: the task ended before its container started")
            return "superseded"
        self._watch(guid, execution_id, min(task.timeout, WATCH_HOP_S))
        return "launched"

    def _refused(self, task: TaskRecord, reason: str) -> str:
        """No container now: back to Pending, tried again after 2^n s; failed after BBS's
        rejections."""
        guid, now = task.task_guid, now_ns()
        try:
            self.tasks.apply(guid, lifecycle.reject(reason, now,
                                                    self.settings.max_task_retries))
        except RetryLimitReached:
            return self._write(guid, lifecycle.reject_exhausted(reason, now), "failed")
        except (InvalidStateTransition, NotFound):
            return "superseded"
        self.queue.send_after_write(guid, delay_s=2 ** (task.rejection_count + 1))
        return "rejected"

    # --- the back-end's events --------------------------------------------------------------

    def on_event(self, raw: dict[str, Any]) -> str:
        """An ECS Task State Change: RUNNING is noted; STOPPED completes the execution (or
        retries its task) with the exit code and the output, in one conditional write.
        Anything not about the current launch of a job's task is dropped; a repeat finds its
        condition failed and is dropped too."""
        event = parse_event(raw)
        if event is None:
            return "ignored"
        for _ in range(STOP_TRIES):
            done = self._on_event(event)
            if done != "changed":
                return done
        return "superseded"

    def _on_event(self, event: ContainerEvent) -> str:
        """One reading of the event against the record: "changed" when the record moved
        between the read and the write (a stop marked meanwhile), to be read again."""
        task = self.tasks.get(event.task_guid, consistent=True)
        if task is None or task.lang != "container" or (
                task.execution_id or task.task_guid) != event.execution_id:
            return "ignored"  # another platform's task, or an earlier attempt's late event
        cell = container_cell(event.execution_id)
        if task.state is State.RUNNING and task.cell_id != cell and not task.container_ref:
            task = self._adopt(task, cell, event) or task  # ended before `launched` was written
        if task.state is not State.RUNNING or task.cell_id != cell or (
                task.container_ref and task.container_ref != event.task_arn):
            return "ignored"
        now = now_ns()
        if not event.stopped:
            return self._write(task.task_guid, lifecycle.annotate(
                cell, {"container_status": event.last_status}, now), "noted")
        ending = ending_of(task, event)
        extra = self._outputs(task, event)
        extra |= {"exit_code": event.exit_code, "outcome": ending.outcome,
                  "container_status": "STOPPED"}
        if ending.retry:
            next_id = ids.new_uuid7(now)
            transition = lifecycle.retry(
                task.model_dump(include=lifecycle.RETRY_FIELDS), ending.reason, now,
                cell_id=cell,
                attempt_extra={**extra, "execution_id": event.execution_id,
                               "container_ref": event.task_arn},
                updates={"execution_id": next_id, "container_ref": "", "container_status": "",
                         "stop_requested": "", "exit_code": None, "outcome": "",
                         "stdout": "", "stderr": "", "stdout_key": "", "stderr_key": ""})
            done = self._write(task.task_guid, replace(transition, updated_at=task.updated_at),
                               "retrying")
            if done == "superseded":
                return "changed"
            if done == "retrying":
                self._next_execution(task, next_id, now)
                self.queue.send_after_write(
                    task.task_guid, delay_s=lifecycle.retry_delay_s(task.model_dump()))
            return done
        extra |= self._answer(task, ending.outcome, event.exit_code)
        done = self._write(task.task_guid, replace(lifecycle.complete(
            cell, now, failed=ending.failed, failure_reason=ending.reason, extra=extra),
            updated_at=task.updated_at), ending.outcome)
        return "changed" if done == "superseded" else done

    def _adopt(self, task: TaskRecord, cell: str, event: ContainerEvent) -> TaskRecord | None:
        """The launch's record, written from its event when the event came first."""
        try:
            outcome = self.tasks.apply(task.task_guid, lifecycle.launched(
                task.cell_id, cell, now_ns(), {"container_ref": event.task_arn,
                                               "container_status": "PROVISIONING"}))
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound):
            return self.tasks.get(task.task_guid, consistent=True)
        return TaskRecord.model_validate(outcome.task) if outcome.task else None

    def _next_execution(self, task: TaskRecord, execution_id: str, now: int) -> None:
        """The retry's new execution, listed under its job at once (as fastlane lists it)."""
        pointer = ExecutionPointer(execution_id=execution_id, task_guid=task.task_guid,
                                   attempt=task.retried + 2, owner=task.owner,
                                   task_id=task.job_task_id, job_id=task.job_id,
                                   created_at=now)
        try:
            # Listed only after the attempt that failed: a retry of the job that came
            # meanwhile stopped this run, and its own execution is the job's last.
            if not self.jobs.add_execution(pointer, None, unless_scheduled=True,
                                           after=task.execution_id or task.task_guid):
                logger.info("task %s: execution %s not listed: the job moved on",
                            task.task_guid, execution_id)
        except Exception:  # the run goes on; only its listing is missing
            logger.exception("task %s: execution %s not listed", task.task_guid, execution_id)

    def _outputs(self, task: TaskRecord, event: ContainerEvent) -> dict[str, Any]:
        """The run's output from CloudWatch Logs, inline when small and in S3 when large,
        under keys of this execution only."""
        found = read_outputs(self.logs, self.settings.job_log_group, log_stream(event.task_arn))
        extra: dict[str, Any] = {"stdout_dropped": found.stdout_dropped,
                                 "stderr_dropped": found.stderr_dropped}
        for stream in ("stdout", "stderr"):
            text: str = getattr(found, stream)
            if len(text) > self.settings.inline_log_bytes:
                key = attempt_key(task.task_guid, event.execution_id, f"{stream}.txt")
                self.blobs.put(key, text.encode(), "text/plain; charset=utf-8")
                extra[f"{stream}_key"] = key
            else:
                extra[stream] = text
        return extra

    @staticmethod
    def _answer(task: TaskRecord, outcome: str, exit_code: int | None) -> dict[str, Any]:
        """What the platform API shows as the run's response: its exit code and status."""
        return {"outcome": outcome, "exit_code": exit_code,
                "response_status": 200 if outcome == "succeeded" else 500,
                "response_headers": {"Content-Type": "application/json"},
                "response_body": json.dumps({"exitCode": exit_code,
                                             "status": FINISHED_WORDS.get(outcome, "failed")})}

    # --- timeout and stop ------------------------------------------------------------------

    def _watch(self, guid: str, execution_id: str, delay_s: int) -> None:
        if self.watch is None:
            return
        try:
            self.watch.client.send_message(
                QueueUrl=self.watch.url, DelaySeconds=max(0, min(WATCH_HOP_S, delay_s)),
                MessageBody=json.dumps({"taskId": guid, "executionId": execution_id}))
        except Exception:  # the converger stops what outlives its timeout (§3.5)
            logger.exception("task %s: its timeout watch was not queued", guid)

    def on_watch(self, body: str) -> str:
        """A run's timeout, due or not: stop it when due, else watch again for the rest."""
        try:
            message = json.loads(body)
            guid, execution_id = str(message["taskId"]), str(message["executionId"])
        except (ValueError, TypeError, KeyError):
            logger.warning("timeout watch: a message that is not one: %r", body[:80])
            return "ignored"  # only the platform writes here: never retried
        task = self.tasks.get(guid, consistent=True)
        cell = container_cell(execution_id)
        if task is None or task.state is not State.RUNNING or task.cell_id != cell:
            return "ended"
        left = task.started_at + task.timeout * SECOND_NS - now_ns()
        if left > 0:
            self._watch(guid, execution_id, -(-left // SECOND_NS))
            return "waiting"
        return self.stop(task, "timeout")

    def stop(self, task: TaskRecord, by: str) -> str:
        """Stop a run (`by` "user" or "timeout"): a Pending one ends now; a running one is
        marked (so its STOPPED event ends it as stopped or timed out, and never retries)
        and its container told to stop. Each write is conditional on the state it was
        decided on; a record changed meanwhile (the launch was just written) is read again."""
        for _ in range(STOP_TRIES):
            done = self._stop_once(task, by)
            if done != "superseded":
                return done
            task = self.tasks.get(task.task_guid, consistent=True)
            if task is None:
                return "ended"
        return "superseded"

    def _stop_once(self, task: TaskRecord, by: str) -> str:
        guid, now = task.task_guid, now_ns()
        ended = lifecycle.fail(USER_STOPPED, now, extra={
            **self._answer(task, "stopped", None), "retries": task.retried})
        if task.state is State.PENDING:
            return self._write(guid, replace(ended, from_states=frozenset({State.PENDING})),
                               "stopped")
        if task.state is not State.RUNNING:
            return "ended"
        if not task.cell_id.startswith(CONTAINER_CELL) or not task.container_ref:
            # Not launched yet: ends it only while it is still on the executor's cell (the
            # launch then sees that and stops the container it started).
            return self._write(guid, replace(ended, from_states=frozenset({State.RUNNING}),
                                             cell_id=task.cell_id), "stopped")
        written = self._write(guid, lifecycle.annotate(
            task.cell_id, {"stop_requested": by, "retries": task.retried}, now), "stopping")
        if written == "stopping" and self.runtime is not None:
            self.runtime.stop(task.container_ref, f"taskfn: {'timed out' if by == 'timeout'
                                                             else 'stopped by user'}")
        return written

    # --- writes ----------------------------------------------------------------------------

    def _write(self, guid: str, transition: Transition, done: str) -> str:
        try:
            self.tasks.apply(guid, transition)
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
            logger.info("task %s: %s not written: %s", guid, transition.action, error.message)
            return "superseded"
        return done



def runtime_of(settings: Settings) -> ContainerRuntime | None:
    """The back-end this deployment runs jobs on: ECS Fargate when its cluster is
    configured, the local stack's child processes where it installed them, else none (the
    runs fail with NO_RUNTIME)."""
    if settings.container_runtime == "process":
        return installed()
    if not settings.jobs_cluster_arn:
        return None
    from taskfn.runtime.ecs import EcsRuntime

    return EcsRuntime(
        aws.LazyClient("ecs"), wiring.table(), cluster_arn=settings.jobs_cluster_arn,
        subnets=[s for s in settings.job_subnets.split(",") if s],
        security_groups=[s for s in settings.job_security_groups.split(",") if s],
        assign_public_ip=settings.job_assign_public_ip,
        execution_role_arn=settings.job_execution_role_arn, log_group=settings.job_log_group,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
        family_prefix=f"{settings.stack_name or 'taskfn'}-")
