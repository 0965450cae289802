"""The local stack's stand-in for ECS Fargate: a job's execution runs its command in a
sandboxed child process (the Python runtime's sandbox, runtime/job_command), never in a
container; the image is recorded, not pulled. What it tells the platform is what ECS tells
it in AWS, through the same paths: the output goes to CloudWatch Logs (moto) in the run's
stream, one record per line that says its source, and the run's start and end are "ECS Task
State Change" events on the default bus (local/eventrules.py), which reach
ContainerEventsFunction. So the completion handler is the same code in both.

It acts as the ECS service does, with the stack's own credentials, not those of the Lambda
that asked for the run; the command itself holds none."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskfn.runtime.containers import Launch, log_stream, source_record, state_change
from taskfn.runtime.python import Execution, Limits, run_python

logger = logging.getLogger(__name__)

JOB_COMMAND = Path(__file__).resolve().parents[1] / "runtime" / "job_command"
# The job's timeout is the platform's to enforce (the watch queue stops it, as in AWS); this
# stand-in ends a run only far past it, should the watch never come.
BACKSTOP_S = 300
MEMORY_MB = 512  # a Fargate task's, as the task definitions ask for
OUTPUT_MAX_BYTES = 16 * 1024 * 1024
SIGTERM_EXIT = 143
BATCH_EVENTS = 5000  # of PutLogEvents: at most 10,000 events and 1 MiB a call
BATCH_BYTES = 900 * 1024


class ProcessRuntime:
    name = "local-process"

    def __init__(self, put_event: Any, logs: Any, *, cluster_arn: str, log_group: str,
                 region: str, account: str, python: str = sys.executable) -> None:
        self.put_event = put_event
        self.logs = logs
        self.cluster_arn = cluster_arn
        self.log_group = log_group
        self.region = region
        self.account = account
        self.python = python
        self._runs: dict[str, tuple[threading.Event, list[str]]] = {}
        self._lock = threading.Lock()

    def launch(self, launch: Launch) -> str:
        """Start the run in a thread of its own; its task ARN, as ECS names tasks."""
        cluster = self.cluster_arn.rsplit("/", 1)[-1]
        ref = f"arn:aws:ecs:{self.region}:{self.account}:task/{cluster}/{uuid.uuid4().hex}"
        cancel, reasons = threading.Event(), []
        with self._lock:
            self._runs[ref] = (cancel, reasons)
        # A new thread starts with an empty context: it acts as the stack, not as the caller.
        threading.Thread(target=self._run, args=(ref, launch, cancel, reasons), daemon=True,
                         name=f"taskfn-job-{launch.execution_id[:8]}").start()
        return ref

    def stop(self, ref: str, reason: str) -> None:
        with self._lock:
            run = self._runs.get(ref)
        if run is not None:
            run[1].append(reason)
            run[0].set()

    def stop_all(self, reason: str) -> None:
        with self._lock:
            refs = list(self._runs)
        for ref in refs:
            self.stop(ref, reason)

    def running(self) -> int:
        with self._lock:
            return len(self._runs)

    def _run(self, ref: str, launch: Launch, cancel: threading.Event,
             reasons: list[str]) -> None:
        try:
            self._emit(ref, launch, "RUNNING")
            execution = run_python(
                JOB_COMMAND, {"argv": list(launch.argv), "envs": launch.envs},
                limits=Limits(timeout_s=launch.timeout_s + BACKSTOP_S, memory_mb=MEMORY_MB,
                              max_output_bytes=OUTPUT_MAX_BYTES),
                task_id=launch.task_guid, python=self.python, cancel=cancel)
            exit_code, stop_code, why = _ending(execution, cancel.is_set(), reasons)
            self._write_output(ref, execution)
            self._emit(ref, launch, "STOPPED", exit_code=exit_code, stop_code=stop_code,
                       stopped_reason=why)
        except Exception:
            logger.exception("local container %s failed", ref)
            self._emit(ref, launch, "STOPPED", stop_code="TaskFailedToStart",
                       stopped_reason="the local container could not run")
        finally:
            with self._lock:
                self._runs.pop(ref, None)

    def _write_output(self, ref: str, execution: Execution) -> None:
        stream = log_stream(ref)
        self.logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": source_record(source, line)}
                  for source in ("stdout", "stderr")
                  for line in getattr(execution, source).splitlines()]
        batch: list[dict[str, Any]] = []
        size = 0
        for event in events:
            length = len(event["message"].encode()) + 26  # PutLogEvents counts 26 bytes each
            if batch and (len(batch) >= BATCH_EVENTS or size + length > BATCH_BYTES):
                self.logs.put_log_events(logGroupName=self.log_group, logStreamName=stream,
                                         logEvents=batch)
                batch, size = [], 0
            batch.append(event)
            size += length
        if batch:
            self.logs.put_log_events(logGroupName=self.log_group, logStreamName=stream,
                                     logEvents=batch)

    def _emit(self, ref: str, launch: Launch, status: str, **detail: Any) -> None:
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.put_event(state_change(cluster_arn=self.cluster_arn, task_arn=ref,
                                    launch=launch, last_status=status, region=self.region,
                                    account=self.account, time=when, **detail))


def _ending(execution: Execution, stopped: bool,
            reasons: list[str]) -> tuple[int | None, str, str]:
    """(exit code, stop code, stopped reason) as ECS reports them for this run."""
    if stopped:
        return SIGTERM_EXIT, "UserInitiated", reasons[-1] if reasons else "stopped"
    if execution.succeeded:
        try:
            code = json.loads(execution.body).get("exitCode")
        except (ValueError, AttributeError):
            code = None
        if isinstance(code, int):
            return code, "EssentialContainerExited", "Essential container in task exited"
    if execution.timed_out:
        return None, "EssentialContainerExited", "the local container outlived its timeout"
    return 137, "EssentialContainerExited", execution.failure_reason or "the command failed"
