"""Tasks: create (write, then dispatch), read, list, results and logs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskfn import ids, userjson, wiring
from taskfn.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, Unprocessable
from taskfn.lifecycle import SECOND_NS
from taskfn.models import (
    DAY_S,
    Caller,
    TaskRecord,
    TaskSummary,
    answer_of_unanswered,
    expiry,
    now_ns,
)
from taskfn.services.ownership import owned
from taskfn.settings import Settings, get_settings
from taskfn.stores.blobs import BlobStore, task_key
from taskfn.stores.idempotency import IdempotencyKeys, check_key, fingerprint
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import FunctionStore
from taskfn.stores.tasks import TaskStatus, TaskStore

# A Lambda answer carries 6 MB of JSON, and a binary body is base64 in it (a third more):
# larger results are answered with a redirect to a presigned GET, valid this long.
ANSWER_MAX_BYTES = 4 * 1024 * 1024
ANSWER_MAX_JSON_BYTES = 5 * 1024 * 1024  # of the 6 MB answer, the rest for its headers
RESULT_URL_EXPIRES_S = 300


@dataclass(frozen=True)
class TaskResponse:
    """A finished task's HTTP response, replayed as the function gave it; or, for one too
    large to answer, where to fetch its body (`location`)."""

    status: int
    headers: dict[str, str]
    body: bytes
    location: str | None = None


def answer_bytes(body: bytes) -> int:
    """How much of a Lambda answer a body takes: text as JSON escapes it (a control or
    non-ASCII character is six bytes or twelve), anything else base64."""
    try:
        return len(json.dumps(body.decode()))
    except UnicodeDecodeError:
        return (len(body) + 2) // 3 * 4


def fitted(logs: TaskLogs) -> TaskLogs:
    """The logs cut (from the end, counted as dropped) until they fit a Lambda answer: 2 MiB
    of kept output is up to 12 MB as JSON when it is all control or non-ASCII characters."""
    while len(json.dumps([logs.stdout, logs.stderr])) > ANSWER_MAX_JSON_BYTES:
        out, err = logs.stdout[: len(logs.stdout) // 2], logs.stderr[: len(logs.stderr) // 2]
        logs = TaskLogs(
            out, err,
            logs.stdout_dropped + len(logs.stdout.encode()) - len(out.encode()),
            logs.stderr_dropped + len(logs.stderr.encode()) - len(err.encode()))
    return logs


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


@dataclass(frozen=True)
class TaskLogs:
    stdout: str
    stderr: str
    stdout_dropped: int
    stderr_dropped: int


class TaskService:
    def __init__(
        self,
        tasks: TaskStore,
        functions: FunctionStore,
        blobs: BlobStore,
        queue: TaskQueue,
        settings: Settings,
        keys: IdempotencyKeys | None = None,
    ):
        self.tasks = tasks
        self.functions = functions
        self.blobs = blobs
        self.queue = queue
        self.settings = settings
        self.keys = keys or IdempotencyKeys(tasks.table)

    @classmethod
    def from_env(cls) -> TaskService:
        return cls(
            wiring.tasks(), wiring.functions(), wiring.blobs(), wiring.task_queue(),
            get_settings(),
        )

    def create(
        self, caller: Caller, function_id: str, *, body: Any, query: dict[str, str], size: int,
        idempotency_key: str | None = None, endpoint_id: str = "",
        schedule_id: str = "", task_id: str | None = None,
        triggered_by: str = "", trigger_depth: int = 0, trigger_root: str = "",
    ) -> TaskRecord:
        """Write the task, then send it to the queue. If the process dies in between, the
        task stays Pending and convergence dispatches it again: nothing is lost, so a failed
        send is not the caller's failure either.

        With an idempotency key, a retry of the same request (same caller, function, body
        and query, within 24 hours) gets the first request's task, and nothing runs twice;
        the key reused for another request is 422.

        A schedule's run (services/schedules.py) gives its `schedule_id` and a `task_id` of
        its fire time: a second delivery of the run finds that task and creates no other."""
        self.check_size(size)
        now = now_ns()
        task_id = task_id or ids.new_id()
        payload = {"body": body, "query": query}
        encoded = userjson.dumps(payload).encode()
        function = owned(self.functions.get, function_id, caller, "function")
        if function.paused:
            raise Conflict("function is paused", "resume it to accept new tasks")
        if not function.build_id and function.lang != "http":
            raise InvalidRequest(
                "function has no code yet",
                f"upload a zip with POST /v1/build/{function.id}, or create it with source",
            )
        if idempotency_key is not None:
            # After the checks, so that a refused request claims nothing: corrected, it may
            # be sent again with the same key.
            claim = self.keys.claim(
                caller.user, "greencloud.task", check_key(idempotency_key),
                fingerprint(function_id, json.dumps(payload, sort_keys=True)), task_id,
                now // SECOND_NS)
            if not claim.same:
                raise Unprocessable("Idempotency-Key already used for another request",
                                    "a key stands for one request for 24 hours")
            if not claim.first:
                existing = self.tasks.get(claim.task_id, consistent=True)
                if existing is not None:
                    return existing
                if claim.settled:
                    raise Conflict("the task of this Idempotency-Key was deleted",
                               "it ran once; send another key to create a new task")
                task_id = claim.task_id  # the first request stopped before its write
        task = TaskRecord(
            task_guid=task_id,
            owner=caller.user,
            created_at=now,
            updated_at=now,
            expires_at=expiry(now, self.settings.task_retention_days),
            endpoint_id=endpoint_id,  # a public endpoint's call (services.endpoints)
            schedule_id=schedule_id,  # a schedule's run (services.schedules)
            triggered_by=triggered_by,  # a trigger's chain (services.triggers)
            trigger_depth=trigger_depth,
            trigger_root=trigger_root,
            **function.run_fields(),
        )
        if len(encoded) > self.settings.inline_input_bytes:
            key = task_key(task_id, "input.json")
            self.blobs.put(key, encoded, "application/json")
            task = task.model_copy(update={"input_key": key})
        else:
            task = task.model_copy(update={"input": payload})
        if not self.tasks.put_new(task):
            # Two retries of one keyed request raced to write the first's task: one did.
            existing = self.tasks.get(task_id, consistent=True)
            if existing is None:
                raise Conflict("the task changed concurrently; try again")
            return existing
        if idempotency_key is not None:
            self.keys.settle(caller.user, "greencloud.task", idempotency_key)
        self.queue.send_after_write(task_id)
        return task

    def check_size(self, size: int) -> None:
        if size > self.settings.max_task_body_bytes:
            raise PayloadTooLarge(
                "request body too large", f"at most {self.settings.max_task_body_bytes} bytes"
            )

    def get(self, caller: Caller, task_id: str) -> TaskRecord:
        """A task of the caller's, whichever API created it (a Cell API guid included). One
        past its retention is gone, whether or not DynamoDB has deleted it yet (it does so
        lazily, up to days later)."""
        task = owned(self.tasks.get, task_id, caller, "task", valid=ids.is_task_guid)
        if task.expired(now_ns()):
            raise NotFound("task expired", self._kept())
        return task

    def _kept(self) -> str:
        return f"tasks, results and logs are kept {self.settings.task_retention_days} days"

    @contextmanager
    def _expired_when_gone(self) -> Iterator[None]:
        """Reads of the task's objects in S3: one its lifecycle rule already removed is
        expired (a 404 of the API's own), not a fault."""
        try:
            yield
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound("task output expired", self._kept()) from error
            raise

    def _output(self, key: str) -> bytes:
        with self._expired_when_gone():
            return self.blobs.get(key)

    def list(
        self, caller: Caller, *, limit: int, cursor: str | None, function_id: str | None = None,
        status: TaskStatus | None = None,
    ) -> tuple[list[TaskSummary], str | None]:
        """The caller's tasks within the retention, newest first, one Query a page: all of
        them (the owner index), or one function's (the caller's function, 404 otherwise: its
        item, then its index partition and the page's tasks by key); `status` as
        stores.tasks.status_filter says. A filtered page may hold fewer than `limit` tasks,
        even none, with a cursor to go on."""
        kept_ns = self.settings.task_retention_days * DAY_S * SECOND_NS
        since_ns = max(0, now_ns() - kept_ns)
        if function_id is None:
            return self.tasks.list_by_owner(caller.user, limit=limit, cursor=cursor,
                                            since_ns=since_ns, status=status)
        owned(self.functions.get, function_id, caller, "function")
        return self.tasks.list_by_function(function_id, owner=caller.user, limit=limit,
                                           cursor=cursor, since_ns=since_ns, status=status)

    def input_of(self, task: TaskRecord) -> dict[str, Any]:
        if task.input_key:
            return json.loads(self._output(task.input_key))
        return task.input or {"body": None, "query": {}}

    def result(self, caller: Caller, task_id: str) -> TaskResponse:
        """404 until the task has finished, then the function's own response."""
        return self.response_of(self.get(caller, task_id))

    def response_of(self, task: TaskRecord, *,
                    url_expires_s: int = RESULT_URL_EXPIRES_S) -> TaskResponse:
        """A task's response, whoever may read it (the owner, or anyone through a public
        endpoint's window, whose link dies with the window: `url_expires_s`): 404 until it
        has finished."""
        if not task.finished:
            raise NotFound("task has not finished yet")
        if not task.response_status:
            status, content_type, body = answer_of_unanswered(task.failed, task.failure_reason,
                                                              task.result)
            return TaskResponse(status, {"Content-Type": content_type}, body)
        if task.response_key:
            with self._expired_when_gone():
                stored = self.blobs.get_unless_over(task.response_key, ANSWER_MAX_BYTES)
            if stored is None or answer_bytes(stored) > ANSWER_MAX_JSON_BYTES:
                # More than a Lambda answer carries: the client fetches it from S3 itself.
                content_type = _header(task.response_headers, "content-type") or \
                    "application/octet-stream"
                url = self.blobs.download_url(task.response_key, content_type,
                                              min(url_expires_s, RESULT_URL_EXPIRES_S))
                return TaskResponse(task.response_status, dict(task.response_headers), b"",
                                    location=url)
            body = stored
        else:
            text = task.response_body or ""
            body = base64.b64decode(text) if task.response_base64 else text.encode()
        return TaskResponse(task.response_status, dict(task.response_headers), body)

    def logs(self, caller: Caller, task_id: str) -> TaskLogs:
        task = self.get(caller, task_id)
        stdout = self._output(task.stdout_key).decode() if task.stdout_key else task.stdout
        stderr = self._output(task.stderr_key).decode() if task.stderr_key else task.stderr
        return fitted(TaskLogs(stdout, stderr, task.stdout_dropped, task.stderr_dropped))
