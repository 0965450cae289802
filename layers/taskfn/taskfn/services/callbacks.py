"""Completion callbacks (reference/bbs.md), delivered by the callback Lambda from its queue,
never inside an API request.

What queues a callback is the table's stream: a task entering Completed with a callback URL
(completed, failed, cancelled, expired, or demoted back from Resolving), whoever wrote it. No
writer sends anything beside its write, and the stream does not lose a change, so a callback
is queued even when the writer dies right after its write.

Per task guid: Completed → Resolving (conditional, so two deliveries of one message cannot
both post), POST the BBS payload, then delete the task on any answer but a timeout, a
connection error or 503/504, which are retried up to three attempts. A delivery that gives up
leaves the task Resolving; convergence demotes it and sends the callback again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from taskfn import lifecycle, outbound, wiring
from taskfn.errors import InvalidStateTransition, NotFound
from taskfn.lifecycle import State
from taskfn.models import TaskRecord, now_ns
from taskfn.settings import Settings, get_settings
from taskfn.stores.queue import TaskQueue
from taskfn.stores.table import from_item
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

ATTEMPTS = 3  # BBS's callback attempts
RETRY_STATUSES = frozenset({503, 504})
PAYLOAD_FIELDS = ("task_guid", "failed", "failure_reason", "result", "annotation", "created_at")

# (url, JSON body, the whole POST's time in seconds, the address to connect to) → HTTP
# status; raises OSError (timeouts, refused connections, TLS failures) when no answer came.
Poster = Callable[[str, bytes, float, str], int]
Resolver = outbound.Resolver
# The SSRF guard is outbound's, shared with HTTP functions.
RefusedURL = outbound.RefusedURL
check_url = outbound.check_url
resolve = outbound.resolve


def newly_completed(records: list[Mapping[str, Any]]) -> list[str]:
    """Guids of tasks that a stream batch shows entering Completed with a callback URL, in
    order, each once."""
    guids: list[str] = []
    for record in records:
        change = record.get("dynamodb") or {}
        new = from_item(change.get("NewImage") or {})
        old = from_item(change.get("OldImage") or {})
        entered = new.get("state") == State.COMPLETED and old.get("state") != State.COMPLETED
        is_task = new.get("SK") == "TASK"
        if entered and is_task and new.get("completion_callback_url"):
            guid = str(new.get("task_guid", ""))
            if guid and guid not in guids:
                guids.append(guid)
    return guids


def queue_callbacks(records: list[Mapping[str, Any]], queue: TaskQueue) -> list[str]:
    """Queue the callbacks a stream batch calls for; raises when SQS refuses some, so the
    batch comes again (a duplicate message is dropped by the Resolving write)."""
    guids = newly_completed(records)
    refused = queue.send_many(guids) if guids else []
    if refused:
        raise RuntimeError(f"could not queue {len(refused)} callbacks, e.g. {refused[0]}")
    return guids


def post_json(url: str, body: bytes, timeout: float, address: str) -> int:
    """POST the callback to `address`, the one the SSRF check approved (outbound.post: any
    status is an answer, a redirect is not followed, `timeout` is the whole POST's)."""
    return outbound.post(url, body, address=address, deadline_s=timeout).status


def payload(task: TaskRecord) -> bytes:
    """BBS's callback body."""
    body = {name: getattr(task, name) for name in PAYLOAD_FIELDS}
    return json.dumps(body, separators=(",", ":")).encode()


class CallbackDelivery:
    def __init__(
        self,
        tasks: TaskStore,
        settings: Settings,
        *,
        post: Poster = post_json,
        resolver: Resolver = resolve,
        now: Callable[[], int] = now_ns,
    ):
        self.tasks = tasks
        self.settings = settings
        self.post = post
        self.resolver = resolver
        self.now = now

    @classmethod
    def from_env(cls) -> CallbackDelivery:
        return cls(wiring.tasks(), get_settings())

    def deliver(self, task_guid: str) -> str:
        """One message: "dropped" (not a Completed task with a callback any more),
        "delivered" / "refused" (task deleted) or "gave_up" (left Resolving)."""
        task = self.tasks.get(task_guid)
        url = task.completion_callback_url if task else ""
        if task is None or task.state != State.COMPLETED or not url:
            logger.info("callback of task %s dropped: not a Completed task with one", task_guid)
            return "dropped"
        try:
            self.tasks.apply(task_guid, lifecycle.resolving(self.now()))
        except (InvalidStateTransition, NotFound) as error:
            logger.info("callback of task %s dropped: %s", task_guid, error.message)
            return "dropped"
        try:
            address = check_url(url, allow_private=self.settings.allow_private_callbacks,
                                resolver=self.resolver)
        except RefusedURL as error:
            logger.warning("callback of task %s refused: %s", task_guid, error)
            self._delete(task_guid)
            return "refused"
        body = payload(task)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                status = self.post(url, body, self.settings.callback_timeout_s, address)
            except OSError as error:  # timeouts and connection errors (URLError is one)
                logger.info("callback of task %s attempt %d: %s", task_guid, attempt, error)
                continue
            if status in RETRY_STATUSES:
                logger.info("callback of task %s attempt %d: %d", task_guid, attempt, status)
                continue
            logger.info("callback of task %s answered %d", task_guid, status)
            self._delete(task_guid)
            return "delivered"
        logger.warning("callback of task %s gave up after %d attempts", task_guid, ATTEMPTS)
        return "gave_up"

    def _delete(self, task_guid: str) -> None:
        """Resolving → removed; a task demoted meanwhile is left to convergence."""
        try:
            self.tasks.remove(task_guid, lifecycle.delete())
        except (InvalidStateTransition, NotFound) as error:
            logger.info("task %s not deleted after its callback: %s", task_guid, error.message)
