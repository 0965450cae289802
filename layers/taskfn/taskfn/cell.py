"""An external cell (`taskfn cell`): runs Cell API tasks on any machine, talking to the platform
only over HTTP with a token of scope `cell`.

A cycle lists its domain (list.r3), picks the oldest Pending task whose placement tags are all
among the cell's tags, starts it (one winner when cells race; a loser moves on to the next),
runs it in a child process of the platform's Python runtime while heartbeating, and completes
it. What it runs is the task's own code: `task_definition.source`, the source of a main.py that
defines handler(event, context), called with `task_definition.input` as event["body"], as
platform functions are. A cell cannot read the platform's S3, so a function_id task is failed
with a reason instead of waiting Pending until it expires.

A cell acts as its node (`--id` is the node's hash) with the node's cell token, which POST
/v1/node/{hash} issues; `--register` does that with a user token and keeps the cell token in a
file for the cell's next start. While it runs, the cell heartbeats its node (up, busy or
free); a disabled node gets no work until it is restored.

A heartbeat answered with an error means the task is no longer Running here (cancelled, failed
by convergence): the child is killed and the task is not completed. Stopping the cell
(SIGINT/SIGTERM) abandons a running task the same way; convergence fails it once its heartbeats
stop for the cell timeout, as it would for a cell that died.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskfn.runtime.python import CANCELLED_REASON, DEFAULT_MEMORY_MB, Limits, run_python
from taskfn.services.executor import bbs_result

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0
WATCH_SLICE_S = 0.1  # how soon a stop or a lost task reaches the running child
COMPLETE_ATTEMPTS = 3  # a completion is the run's only record: retried when unanswered
NO_SOURCE_REASON = (
    "nothing to run: an external cell runs task_definition.source (Python source defining "
    "handler(event, context)); function_id tasks run in the built-in executor, without "
    "placement_tags"
)


class CellApiError(Exception):
    """The platform answered with an error: `status` 200 is BBS's error about the task
    (InvalidStateTransition, RunningOnDifferentCell, ...); 401/403 are the token's."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message

    @property
    def about_the_task(self) -> bool:
        return self.status == 200


class ApiUnreachable(Exception):
    """No usable answer (network, timeout, 5xx): worth trying again later."""


class CellClient:
    """The Cell API's calls a cell makes: JSON over POST, errors raised."""

    def __init__(self, api: str, token: str, timeout_s: float = HTTP_TIMEOUT_S):
        self.api = api.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST JSON to `path`: (status, the JSON answer or None); 5xx and no answer raise."""
        request = urllib.request.Request(
            f"{self.api}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, data = error.code, error.read()
        except (OSError, ValueError) as error:  # URLError, timeouts, refused connections
            raise ApiUnreachable(f"{path}: {error}") from error
        if status >= 500:
            raise ApiUnreachable(f"{path}: HTTP {status}")
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def node_heartbeat(self, node: str, running: int) -> None:
        """The node is up and runs `running` tasks (GreenCloud's error body on a refusal)."""
        status, answer = self.post(f"/v1/node/{node}/heartbeat", {"running": running})
        if status != 204:
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise CellApiError(status, "NodeRefused", str(message))

    def call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.post(f"/v1/tasks/{route}", body)
        if not isinstance(answer, dict):
            raise ApiUnreachable(f"{route}: HTTP {status}")
        error = answer.get("error")
        if status != 200 or error:
            error = error if isinstance(error, dict) else {}
            raise CellApiError(status, str(error.get("type", "")), str(error.get("message", "")))
        return answer

    def list_tasks(self, domain: str) -> list[dict[str, Any]]:
        return self.call("list.r3", {"domain": domain})["tasks"]

    def start(self, task_guid: str, cell_id: str) -> bool:
        return bool(self.call("start", {"task_guid": task_guid, "cell_id": cell_id})
                    ["should_start"])

    def heartbeat(self, task_guid: str, cell_id: str) -> None:
        self.call("heartbeat", {"task_guid": task_guid, "cell_id": cell_id})

    def complete(self, task_guid: str, cell_id: str, *, failed: bool, failure_reason: str,
                 result: str) -> None:
        self.call("complete", {"task_guid": task_guid, "cell_id": cell_id, "failed": failed,
                               "failure_reason": failure_reason, "result": result})


def register_node(api: str, user_token: str, node: str, description: str = "") -> str:
    """POST /v1/node/{hash} with a user token: the new node's cell token."""
    status, answer = CellClient(api, user_token).post(f"/v1/node/{node}",
                                                      {"description": description})
    if status != 201 or not isinstance(answer, dict) or not answer.get("token"):
        message = answer.get("message", "") if isinstance(answer, dict) else ""
        raise CellApiError(status, "NodeNotRegistered", str(message) or f"HTTP {status}")
    return str(answer["token"])


def parse_tags(text: str) -> frozenset[str]:
    """`--tags a,b` as a set; blanks ignored."""
    return frozenset(tag.strip() for tag in text.split(",") if tag.strip())


def placeable(task: dict[str, Any], tags: frozenset[str], now_ns: int | None = None) -> bool:
    """A Pending task this cell may take: it has placement tags and all are the cell's, and it
    is not backing off after a failed attempt (taskfn's retry_at). A task without tags is the
    built-in executor's."""
    wanted = task.get("placement_tags") or []
    now = time.time_ns() if now_ns is None else now_ns
    backing_off = int(task.get("retry_at") or 0) > now
    return (
        task.get("state") == "Pending" and bool(wanted) and set(wanted) <= tags
        and not backing_off
    )


@dataclass
class _Watch:
    """What the heartbeat thread learned while the task ran."""

    cancel: threading.Event = field(default_factory=threading.Event)
    lost: str = ""  # the platform's answer: the task is no longer Running on this cell
    abandoned: bool = False  # the cell was asked to stop


class Cell:
    """One cell: one task at a time, oldest placeable first."""

    def __init__(self, client: CellClient, cell_id: str, tags: frozenset[str], domain: str, *,
                 poll_s: float = 1.0, heartbeat_s: float = 5.0, timeout_s: float = 600.0):
        self.client = client
        self.cell_id = cell_id
        self.tags = tags
        self.domain = domain
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.stopping = threading.Event()
        self.running = 0  # tasks running now, as the node's heartbeat says

    def run_forever(self, stop: threading.Event) -> None:
        """Cycle until `stop` is set, heartbeating the node meanwhile; an unreachable API is
        logged and tried again."""
        self.stopping = stop
        beats = threading.Thread(target=self._node_heartbeats, args=(stop,),
                                 name="node-heartbeat", daemon=True)
        beats.start()
        try:
            while not stop.is_set():
                try:
                    ran = self.run_once()
                except (ApiUnreachable, CellApiError) as error:
                    logger.warning("cell %s: %s", self.cell_id, error)
                    ran = None
                if ran is None:
                    stop.wait(self.poll_s)
        finally:
            beats.join()

    def _node_heartbeats(self, stop: threading.Event) -> None:
        """The node's heartbeat, at once and every `heartbeat_s`: available, busy or free."""
        while True:
            try:
                self.client.node_heartbeat(self.cell_id, self.running)
            except (ApiUnreachable, CellApiError) as error:
                logger.warning("cell %s: node heartbeat: %s", self.cell_id, error)
            if stop.wait(self.heartbeat_s):
                return

    def run_once(self) -> tuple[str, str] | None:
        """One poll: start the first placeable task this cell wins and run it to its end.
        Returns (task_guid, outcome), or None when there was nothing to take."""
        for task in self.client.list_tasks(self.domain):
            if self.stopping.is_set():
                return None
            if not placeable(task, self.tags):
                continue
            guid = task["task_guid"]
            try:
                won = self.client.start(guid, self.cell_id)
            except CellApiError as error:
                if not error.about_the_task:
                    raise
                logger.info("cell %s: task %s taken elsewhere: %s", self.cell_id, guid, error)
                continue
            if won:
                self.running = 1
                try:
                    return guid, self.run(task)
                finally:
                    self.running = 0
            # should_start false: it already runs on this cell id (a previous life of this cell).
            logger.info("cell %s: task %s already Running on this cell id", self.cell_id, guid)
        return None

    def run(self, task: dict[str, Any]) -> str:
        """Run a started task and complete it; returns its outcome for the log."""
        guid = task["task_guid"]
        source = task.get("source")
        if not isinstance(source, str) or not source.strip():
            return self._complete(guid, failed=True, failure_reason=NO_SOURCE_REASON, result="")
        event = {"body": task.get("input"), "query": {}, "taskId": guid, "functionId": ""}
        memory = task.get("memory_mb") or DEFAULT_MEMORY_MB
        limits = Limits(timeout_s=self.timeout_s, memory_mb=int(memory))
        with tempfile.TemporaryDirectory(prefix="taskfn-cell-") as code_dir, \
                self._heartbeats(guid) as watch:
            (Path(code_dir) / "main.py").write_text(source)
            execution = run_python(Path(code_dir), event, limits=limits, task_id=guid,
                                   cancel=watch.cancel)
        if execution.failure_reason == CANCELLED_REASON:
            if watch.lost:
                logger.info("cell %s: task %s stopped: %s", self.cell_id, guid, watch.lost)
                return "cancelled"
            logger.info("cell %s: task %s abandoned: the cell is stopping", self.cell_id, guid)
            return "abandoned"
        if not execution.succeeded and execution.stderr:
            logger.info("cell %s: task %s stderr:\n%s", self.cell_id, guid,
                        execution.stderr[-2000:])
        return self._complete(guid, failed=not execution.succeeded,
                              failure_reason=execution.failure_reason,
                              result=bbs_result(execution))

    def _complete(self, guid: str, *, failed: bool, failure_reason: str, result: str) -> str:
        """The completing call; an error answer means the task is no longer ours."""
        for attempt in range(1, COMPLETE_ATTEMPTS + 1):
            try:
                self.client.complete(guid, self.cell_id, failed=failed,
                                     failure_reason=failure_reason, result=result)
            except CellApiError as error:
                logger.info("cell %s: task %s not completed here: %s", self.cell_id, guid, error)
                return "superseded"
            except ApiUnreachable as error:
                if attempt == COMPLETE_ATTEMPTS:
                    raise
                logger.warning("cell %s: completing %s: %s; again", self.cell_id, guid, error)
                time.sleep(attempt)
            else:
                break
        outcome = "failed" if failed else "succeeded"
        logger.info("cell %s: task %s %s", self.cell_id, guid, outcome)
        return outcome

    @contextmanager
    def _heartbeats(self, guid: str) -> Iterator[_Watch]:
        """While the task runs: a heartbeat every `heartbeat_s` (the first after one interval;
        start just wrote updated_at), and `cancel` set when the task is lost or the cell
        stops. An unanswered heartbeat is only logged: convergence judges long silences."""
        watch = _Watch()
        done = threading.Event()

        def beat() -> None:
            due = time.monotonic() + self.heartbeat_s
            while not done.wait(WATCH_SLICE_S):
                if self.stopping.is_set():
                    watch.abandoned = True
                    watch.cancel.set()
                    return
                if time.monotonic() < due:
                    continue
                due = time.monotonic() + self.heartbeat_s
                try:
                    self.client.heartbeat(guid, self.cell_id)
                except CellApiError as error:
                    # About the task (it moved on), or 403: the node was disabled, and
                    # nothing it runs will be accepted: stop the run either way.
                    if error.about_the_task or error.status == 403:
                        watch.lost = str(error)
                        watch.cancel.set()
                        return
                    logger.warning("cell %s: heartbeat of %s: %s", self.cell_id, guid, error)
                except ApiUnreachable as error:
                    logger.warning("cell %s: heartbeat of %s: %s", self.cell_id, guid, error)

        thread = threading.Thread(target=beat, name=f"heartbeat-{guid}", daemon=True)
        thread.start()
        try:
            yield watch
        finally:
            done.set()
            thread.join()
