"""The built-in executor: start a task (one conditional write), run it, complete it (one
conditional write). It is a cell like any other, with its own cell id, and goes through the
same lifecycle as external cells will."""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidStateTransition, NotFound, RunningOnDifferentCell
from taskfn.lifecycle import State
from taskfn.models import BUILT_IN_CELL_PREFIX, TaskRecord, now_ns
from taskfn.runtime import http_function
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.python import DEFAULT_MEMORY_MB, Execution, Limits, failure, run_python
from taskfn.services.containers import ContainerRuns
from taskfn.services.holds import HoldService
from taskfn.settings import Settings, get_settings
from taskfn.stores.blobs import BlobStore, attempt_key
from taskfn.stores.lambdas import FunctionLambdas
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import FunctionStore
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0
# BBS's result: a task's result_file, up to 10 KB (reference/bbs.md). Here the response body.
RESULT_MAX_BYTES = 10 * 1024
# Why a privileged function's task fails where the operator has not allowed privileged work.
PRIVILEGED_REFUSED = "privileged work is not allowed on this platform (ALLOW_PRIVILEGED)"


class NotEnoughTime(Exception):
    """The Lambda cannot give this task its full timeout; leave it queued for another."""


def executor_cell_id() -> str:
    """One id per executor instance, so a stale instance can never complete a task that
    another instance runs (BBS RunningOnDifferentCell)."""
    return f"{BUILT_IN_CELL_PREFIX}{uuid.uuid4().hex[:12]}"


class Executor:
    def __init__(
        self,
        tasks: TaskStore,
        functions: FunctionStore,
        blobs: BlobStore,
        code: CodeCache,
        cell_id: str,
        settings: Settings,
        runner: Callable[..., Execution] = run_python,
        queue: TaskQueue | None = None,
        lambdas: FunctionLambdas | None = None,
        holds: HoldService | None = None,
        containers: ContainerRuns | None = None,
    ):
        self.tasks = tasks
        self.queue = queue
        self.functions = functions
        self.blobs = blobs
        self.code = code
        self.cell_id = cell_id
        self.settings = settings
        self.runner = runner
        self.lambdas = lambdas  # isolation "lambda": tasks run in their function's Lambda
        self.holds = holds  # a paused function's tasks are held, not run
        self._containers: ContainerRuns | None = containers

    def containers(self) -> ContainerRuns:
        """fastlane jobs' runs (built on first use: most executors never start one)."""
        if self._containers is None:
            self._containers = ContainerRuns.from_env()
        return self._containers

    @classmethod
    def from_env(cls, runner: Callable[..., Execution] = run_python) -> Executor:
        settings = get_settings()
        return cls(
            wiring.tasks(),
            wiring.functions(),
            wiring.blobs(),
            CodeCache(Path(settings.code_cache_dir), max_bytes=settings.code_cache_max_bytes),
            executor_cell_id(),
            settings,
            runner,
            wiring.task_queue(),
            wiring.function_lambdas(),
            HoldService.from_env(),
        )

    def run(self, task_id: str, remaining_ms: Callable[[], int] | None = None) -> str:
        """Run one task to completion; returns what happened, for the log.

        Raises only before the task has started (so SQS may deliver it again safely) or when
        the completing write itself fails."""
        started = self.start(task_id, remaining_ms)
        if started is None:
            return "skipped"
        if started.lang == "container":  # a fastlane job's run: its container is started,
            return self.containers().launch(started, self.cell_id)  # its event ends it
        # Set by the heartbeat when the task is no longer Running on this cell: the runner
        # kills the child, and the outcome already written elsewhere stays (nothing is written).
        cancelled = threading.Event()
        try:
            with self._heartbeat(task_id, cancelled):
                execution = self.execute(started, cancel=cancelled)
                if not cancelled.is_set():
                    extra = self.keep_outputs(started, execution)
            if cancelled.is_set():
                return _superseded(task_id, "no longer Running on this cell")
            transition = lifecycle.complete(
                self.cell_id,
                now_ns(),
                failed=not execution.succeeded,
                failure_reason=execution.failure_reason,
                result=bbs_result(execution),
                extra=extra,
            )
        except Exception as error:  # infrastructure fault: the task must not stay Running
            if cancelled.is_set():  # not ours any more: nothing to keep from Running
                logger.warning("task %s: executor error after it was taken away", task_id,
                               exc_info=True)
                return _superseded(task_id, "no longer Running on this cell")
            logger.exception("task %s failed in the executor", task_id)
            transition = lifecycle.complete(
                self.cell_id,
                now_ns(),
                failed=True,
                failure_reason=f"executor error: {type(error).__name__}: {error}",
                extra=_error_response("ExecutorError", str(error)),
            )
        failed = bool(transition.updates["failed"])
        attempt = started.model_dump(include=lifecycle.RETRY_FIELDS)
        if failed and lifecycle.retries_left(attempt):
            transition = lifecycle.retry(
                attempt,
                transition.updates["failure_reason"],
                now_ns(),
                cell_id=self.cell_id,
            )
        try:
            self.tasks.apply(
                task_id, transition, has_callback=bool(started.completion_callback_url)
            )
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
            # Cancelled, failed by convergence or deleted while it ran: theirs is the truth.
            return _superseded(task_id, error.message)
        if transition.action == "retry":
            if self.queue is not None:  # the next attempt, once the back-off has passed
                delay = lifecycle.retry_delay_s(attempt)
                self.queue.send_after_write(task_id, delay_s=delay)
            return "retrying"
        return "failed" if failed else "succeeded"

    def start(
        self, task_id: str, remaining_ms: Callable[[], int] | None = None
    ) -> TaskRecord | None:
        """Pending → Running on this cell, or None when this delivery must do nothing."""
        if remaining_ms is not None:
            # The record does not say the timeout before it is read; assume the longest.
            needed = (120 + self.settings.executor_margin_s) * 1000
            if remaining_ms() < needed:
                raise NotEnoughTime(task_id)
        try:
            outcome = self.tasks.apply(task_id, lifecycle.start(self.cell_id, now_ns()))
        except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
            logger.info("task %s not started: %s", task_id, error.message)
            return None
        if not outcome.changed:
            logger.info("task %s already running on this cell", task_id)
            return None
        try:
            task = TaskRecord.model_validate(outcome.task)
        except ValidationError:
            # Nothing can run it; fail it now rather than leave it Running for convergence.
            logger.exception("task %s cannot be read: failed", task_id)
            self.tasks.apply(task_id, lifecycle.complete(
                self.cell_id, now_ns(), failed=True,
                failure_reason="the task's record cannot be read",
                extra=_error_response("TaskUnreadable", "the task's record cannot be read")))
            return None
        # A function paused after the task was queued: the task waits for the resume.
        holds = self.holds
        try:
            if holds and task.function_id and holds.paused(task.function_id) and holds.hold(
                    task, self.cell_id):
                return None
        except (ClientError, BotoCoreError):
            # Started here and maybe held: run it only if it is still Running on this cell.
            logger.exception("task %s: its function's pause could not be checked", task_id)
            now = self.tasks.get(task_id, consistent=True)
            if now is None or now.state is not State.RUNNING or now.cell_id != self.cell_id:
                return None
        return task

    def execute(self, task: TaskRecord, cancel: threading.Event | None = None) -> Execution:
        """Run the task's code: in its function's own Lambda, or in a sandbox of this
        executor (setting `cancel` stops it). Runners take the keywords of run_python. The
        task's capabilities bind the run: timeout, memSize, cpuCount (runtime.cgroups), and
        privileged, which fails the task unrun unless the platform allows privileged work.
        An HTTP function's task is a POST to its URL, whatever the isolation: no code runs."""
        if task.capabilities.privileged and not self.settings.allow_privileged:
            logger.info("task %s not run: its function is privileged", task.task_guid)
            return failure(403, "PrivilegedNotAllowed", PRIVILEGED_REFUSED,
                           reason=PRIVILEGED_REFUSED)
        payload = (
            json.loads(self.blobs.get(task.input_key)) if task.input_key else (task.input or {})
        )
        if task.turn:  # a turn of a conversation (Coder's agent tasks)
            event = {"input": payload.get("input", ""), "history": payload.get("history", []),
                     "taskId": task.task_guid}
        else:
            event = {
                "body": payload.get("body"),
                "query": payload.get("query") or {},
                "taskId": task.task_guid,
                "functionId": task.function_id,
            }
        memory = task.capabilities.memSize or DEFAULT_MEMORY_MB
        limits = Limits(timeout_s=float(task.timeout), memory_mb=memory,
                        cpu_count=task.capabilities.cpuCount)
        if task.lang == http_function.LANG:
            return http_function.run_http(
                task.url, event, limits=limits,
                allow_private=self.settings.allow_private_http_functions, cancel=cancel)
        if self.lambdas is not None:
            return self.lambdas.run(task.function_id, task.lambda_version, event, limits,
                                    task.task_guid)
        code_key, build_id = task.code_key, task.build_id
        if not code_key:  # created without its code fixed: the function's current code
            function = self.functions.get(task.function_id)
            if function is None or not function.code_key:
                return failure(500, "FunctionNotFound", "the function was deleted",
                               reason="the function was deleted")
            code_key, build_id = function.code_key, function.build_id
        # Held until the run has ended: the cache evicts no code a sandbox is using.
        reporter = self._progress_reporter(task.task_guid)
        with self.code.use(build_id, lambda: self.blobs.get(code_key)) as code_dir:
            execution = self.runner(
                code_dir,
                event,
                limits=limits,
                task_id=task.task_guid,
                function_id=task.function_id,
                on_progress=reporter,
                cancel=cancel,
            )
        reporter.flush()
        return execution

    @contextmanager
    def _heartbeat(self, task_id: str, cancelled: threading.Event) -> Iterator[None]:
        """While a task runs, refresh its updated_at every `cell_heartbeat_s` (a conditional
        write from this cell), so convergence can tell a live cell from a dead one. The first
        beat comes after one interval: a short task writes nothing more.

        A beat refused because the task is no longer Running on this cell (cancelled, failed
        by convergence, deleted) sets `cancelled`, which stops the run. The write is the only
        check: a cancel is noticed within one interval, with no extra reads."""
        stop = threading.Event()
        interval = self.settings.cell_heartbeat_s

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.tasks.apply(task_id, lifecycle.heartbeat(self.cell_id, now_ns()))
                except (InvalidStateTransition, RunningOnDifferentCell, NotFound) as error:
                    logger.info("task %s: stopping its run: %s", task_id, error.message)
                    cancelled.set()
                    return
                except Exception:
                    logger.warning("heartbeat of task %s not recorded", task_id, exc_info=True)

        # The beats act for this invocation: its context (logging, identity) goes with them.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,),
                                  name=f"heartbeat-{task_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _progress_reporter(self, task_id: str) -> RunReporter:
        return RunReporter(self.tasks, self.cell_id, task_id)

    def keep_outputs(self, task: TaskRecord, execution: Execution) -> dict[str, Any]:
        """Response and logs: inline when small, in S3 when large, under keys of this attempt
        only (the record points at the completing attempt's)."""
        task_id = task.task_guid
        attempt = attempt_id(self.cell_id, task.started_at)
        extra: dict[str, Any] = {
            "response_status": execution.status_code,
            "response_headers": dict(execution.headers),
            "response_base64": execution.is_base64,
            "stdout_dropped": execution.stdout_dropped,
            "stderr_dropped": execution.stderr_dropped,
            "duration_ms": round(execution.duration_ms, 3),
        }
        if execution.succeeded:
            extra["progress"] = 100
        body = execution.body
        if len(body) > self.settings.inline_result_bytes:
            key = attempt_key(task_id, attempt, "result")
            self.blobs.put(key, _decoded(execution), execution.content_type)
            extra["response_key"] = key
        else:
            extra["response_body"] = body
        for stream in ("stdout", "stderr"):
            text: str = getattr(execution, stream)
            if len(text) > self.settings.inline_log_bytes:
                key = attempt_key(task_id, attempt, f"{stream}.txt")
                self.blobs.put(key, text.encode(), "text/plain; charset=utf-8")
                extra[f"{stream}_key"] = key
            else:
                extra[stream] = text
        return extra



class RunReporter:
    """What a running function reports, written to its task at most once a second each: its
    progress (called with a percent; the last report, 100, always goes through) and its state
    (`state`, which the runtime calls with {state, message, uri}: context.report_state). A
    state that came too soon is written by the next one, or by `flush` once the run ended."""

    def __init__(self, tasks: TaskStore, cell_id: str, task_id: str):
        self.tasks, self.cell_id, self.task_id = tasks, cell_id, task_id
        self._lock = threading.Lock()
        self._progress_at, self._progress_sent = 0.0, -1
        self._state_at = 0.0
        self._state_pending: str | None = None

    def __call__(self, percent: int) -> None:
        with self._lock:
            moment = time.monotonic()
            if percent == self._progress_sent or (
                percent < 100 and moment - self._progress_at < PROGRESS_INTERVAL_S
            ):
                return
            self._progress_at, self._progress_sent = moment, percent
        self._write(lifecycle.progress(self.cell_id, percent, now_ns()), "progress")

    def state(self, report: Any) -> None:
        text = state_text(report)
        if text is None:
            return
        with self._lock:
            moment = time.monotonic()
            if moment - self._state_at < PROGRESS_INTERVAL_S:
                self._state_pending = text
                return
            self._state_at, self._state_pending = moment, None
        self._write(lifecycle.report_state(self.cell_id, text, now_ns()), "state")

    def flush(self) -> None:
        with self._lock:
            text, self._state_pending = self._state_pending, None
        if text is not None:
            self._write(lifecycle.report_state(self.cell_id, text, now_ns()), "state")

    def _write(self, transition: lifecycle.Transition, what: str) -> None:
        try:
            self.tasks.apply(self.task_id, transition)
        except Exception:
            logger.warning("%s of task %s not recorded", what, self.task_id, exc_info=True)

TASK_STATES = ("working", "idle", "complete", "failed")
STATE_MESSAGE_MAX = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")
STATE_URI_MAX = 2048


def state_text(report: Any) -> str | None:
    """A state report from the function's process (which user code may forge) as the JSON
    text the task keeps, or None when it is not one: a known state, text capped, and the
    time it arrived (the process does not say when)."""
    if not isinstance(report, dict) or report.get("state") not in TASK_STATES:
        return None
    message, uri = report.get("message", ""), report.get("uri", "")
    if not isinstance(message, str) or not isinstance(uri, str):
        return None
    return json.dumps({"at": now_ns(), "state": report["state"],
                       "message": _characters(message[:STATE_MESSAGE_MAX]),
                       "uri": _characters(uri[:STATE_URI_MAX])})


def _characters(text: str) -> str:
    """`text` with lone surrogates (which JSON can carry but no text holds) as U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def attempt_id(cell_id: str, started_at: int) -> str:
    """One attempt at a task: the cell that started it and when. Cell ids are unique per
    executor instance and one cell starts a task at most once per moment."""
    return f"{cell_id}-{started_at}"


def _superseded(task_id: str, why: str) -> str:
    logger.info("task %s was not completed here: %s", task_id, why)
    return "superseded"


def bbs_result(execution: Execution) -> str:
    """What the Cell API shows as the task's result: a successful run's response body when it
    is text of at most 10 KB, as BBS returns a result_file; otherwise nothing (the whole
    response stays readable through the platform API)."""
    body = execution.body
    if not execution.succeeded or execution.is_base64:
        return ""
    return body if len(body.encode()) <= RESULT_MAX_BYTES else ""


def _decoded(execution: Execution) -> bytes:
    return base64.b64decode(execution.body) if execution.is_base64 else execution.body.encode()


def _error_response(error_type: str, message: str) -> dict[str, Any]:
    return {
        "response_status": 500,
        "response_headers": {"Content-Type": "application/json"},
        "response_body": json.dumps({"errorType": error_type, "errorMessage": message}),
    }



