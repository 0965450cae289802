"""The local stack's stand-in for ECS Fargate: a job's execution runs its command in a
sandboxed child process (the Python runtime's sandbox, runtime/job_command), never in a
container; the image is recorded, not pulled. What it tells the platform is what ECS tells
it in AWS, through the same paths: the output goes to CloudWatch Logs (moto) in the run's
stream while the command runs, as records that say their source, and the run's start and end
are "ECS Task
State Change" events on the default bus (local/eventrules.py), which reach
ContainerEventsFunction. So the completion handler is the same code in both.

It acts as the ECS service does, with the stack's own credentials, not those of the Lambda
that asked for the run; the command itself holds none."""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskfn.local.runs import KILLED_EXIT, KILLED_REASON
from taskfn.runtime.containers import (
    Launch,
    LaunchRefused,
    log_stream,
    source_record,
    state_change,
)
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
# A record holds whole lines up to this many characters; a longer line is cut here, as
# Docker's awslogs driver cuts one at 16 KiB into events of its own.
RECORD_CHARS = 16 * 1024
FLUSH_S = 0.25  # how often what the command printed goes to its stream while it runs


class ProcessRuntime:
    name = "local-process"

    def __init__(self, put_event: Any, logs: Any, *, cluster_arn: str, log_group: str,
                 region: str, account: str, python: str = sys.executable,
                 ledger: Any = None) -> None:
        self.put_event = put_event
        self.logs = logs
        self.ledger = ledger  # with a data directory: the runs in flight (local/runs.py)
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
        if self.ledger is not None:  # before the platform knows the run: see local/runs.py
            try:
                self.ledger.started(ref, launch)
            except Exception as error:
                raise LaunchRefused(f"the local run could not be recorded: {error}") from error
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

    def stop_all(self, reason: str, wait_s: float = 0.0) -> bool:
        """Stop every run; with `wait_s`, wait that long for them to end (their STOPPED events
        sent: the stack stops moto next, and a kept job must not stay running). Whether all
        ended."""
        with self._lock:
            refs = list(self._runs)
        for ref in refs:
            self.stop(ref, reason)
        deadline = time.monotonic() + wait_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.running()

    def running(self) -> int:
        with self._lock:
            return len(self._runs)

    def recover(self) -> int:
        """Tell the end of the runs a previous stack on this data never saw end (it was
        killed, and its commands with it): how many. See local/runs.py."""
        if self.ledger is None:
            return 0
        left = self.ledger.left()
        for ref, launch in left:
            try:
                self._emit(ref, launch, "STOPPED", exit_code=KILLED_EXIT,
                           stop_code="EssentialContainerExited", stopped_reason=KILLED_REASON)
                self.ledger.ended(ref)
            except Exception:  # the converger gives it up past its timeout, as in AWS
                logger.exception("local container %s: its end not told", ref)
        return len(left)

    def _run(self, ref: str, launch: Launch, cancel: threading.Event,
             reasons: list[str]) -> None:
        output = None
        try:
            output = LiveOutput(self.logs, self.log_group, log_stream(ref))
            self._emit(ref, launch, "RUNNING")
            execution = run_python(
                JOB_COMMAND, {"argv": list(launch.argv), "envs": launch.envs},
                limits=Limits(timeout_s=launch.timeout_s + BACKSTOP_S, memory_mb=MEMORY_MB,
                              max_output_bytes=OUTPUT_MAX_BYTES),
                task_id=launch.task_guid, python=self.python, cancel=cancel,
                on_output=output.add)
            try:
                output.close()
            except Exception:  # the run ended as it did; only its output is short
                logger.exception("local container %s: its last output not written", ref)
            exit_code, stop_code, why = _ending(execution, cancel.is_set(), reasons)
            self._emit(ref, launch, "STOPPED", exit_code=exit_code, stop_code=stop_code,
                       stopped_reason=why)
        except Exception:
            logger.exception("local container %s failed", ref)
            if output is not None:
                with contextlib.suppress(Exception):
                    output.close()
            self._emit(ref, launch, "STOPPED", stop_code="TaskFailedToStart",
                       stopped_reason="the local container could not run")
        finally:
            if self.ledger is not None:
                try:
                    self.ledger.ended(ref)
                except Exception:  # told again at the next start, and ignored then
                    logger.exception("local container %s: its end not recorded", ref)
            with self._lock:
                self._runs.pop(ref, None)

    def _emit(self, ref: str, launch: Launch, status: str, **detail: Any) -> None:
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.put_event(state_change(cluster_arn=self.cluster_arn, task_arn=ref,
                                    launch=launch, last_status=status, region=self.region,
                                    account=self.account, time=when, **detail))


class LiveOutput:
    """A run's output on its way to its log stream while the command runs: every FLUSH_S,
    what came since is packed into records of whole lines (at most RECORD_CHARS each, so a
    flood of short lines makes few records, never one per line) and put in one call. A
    partial line waits for its end, or for the run's."""

    def __init__(self, logs: Any, group: str, stream: str) -> None:
        self.logs, self.group, self.stream = logs, group, stream
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        self._decoders = {source: codecs.getincrementaldecoder("utf-8")(errors="replace")
                          for source in ("stdout", "stderr")}
        self._text: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._writer = threading.Thread(target=self._follow, daemon=True,
                                        name=f"taskfn-log-{stream[-8:]}")
        self._writer.start()

    def add(self, source: str, chunk: bytes) -> None:
        """Output as the sandbox's pipe gave it (bounded by the run's output limit)."""
        with self._lock:
            self._text[source].append(self._decoders[source].decode(chunk))

    def close(self) -> None:
        """The run is over: whatever is left goes out, partial lines too."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._writer.join()
        with self._lock:
            for source, decoder in self._decoders.items():
                self._text[source].append(decoder.decode(b"", final=True))
        self._flush(final=True)

    def _follow(self) -> None:
        while not self._closed.wait(FLUSH_S):
            try:
                self._flush(final=False)
            except Exception:  # the next flush, or the last, tries again
                logger.exception("local container output: %s not written yet", self.stream)

    def _flush(self, *, final: bool) -> None:
        """What came since the last flush to the stream; what a failed put did not write
        goes back in front of the buffer, for the next flush."""
        now = int(time.time() * 1000)
        records: list[tuple[str, str]] = []
        with self._lock:
            for source in ("stdout", "stderr"):
                packed, rest = pack_lines("".join(self._text[source]), final=final)
                self._text[source] = [rest]
                records += [(source, record) for record in packed]
        events = [{"timestamp": now, "message": source_record(source, record)}
                  for source, record in records]
        written = 0
        try:
            for batch in _batches(events):
                self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream,
                                         logEvents=batch)
                written += len(batch)
        except Exception:
            with self._lock:
                for source in ("stderr", "stdout"):
                    unwritten = [record for s, record in records[written:] if s == source]
                    if unwritten:
                        self._text[source].insert(0, "\n".join(unwritten) + "\n")
            raise


def pack_lines(text: str, *, final: bool) -> tuple[list[str], str]:
    """(records, the rest): `text`'s complete lines packed into records of at most
    RECORD_CHARS characters, each its lines joined by "\n" (as a reader joins records); a
    line longer than that is cut. The rest is a partial line, kept unless `final`."""
    records: list[str] = []
    start = 0
    end = len(text) if final else text.rfind("\n") + 1
    while start < end:
        piece = text[start:min(end, start + RECORD_CHARS + 1)]
        cut = piece.rfind("\n")
        if cut >= 0:  # whole lines: up to the last newline that fits
            records.append(piece[:cut])
            start += cut + 1
        else:  # one line longer than a record (or the final partial line)
            piece = piece[:RECORD_CHARS]
            records.append(piece)
            start += len(piece)
    rest = text[end:]
    while len(rest) > RECORD_CHARS:  # a partial line that long is cut now, as awslogs would
        records.append(rest[:RECORD_CHARS])
        rest = rest[RECORD_CHARS:]
    return records, rest


def _batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """PutLogEvents calls: within its count and size limits (26 bytes an event)."""
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        length = len(event["message"].encode()) + 26
        if batch and (len(batch) >= BATCH_EVENTS or size + length > BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        batches.append(batch)
    return batches


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
