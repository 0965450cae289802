"""The SQS task queue: a message is only a task id; the record holds the truth."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger(__name__)


class TaskQueue:
    def __init__(self, client: Any, url: str):
        self.client = client
        self.url = url

    def send(self, task_id: str, *, delay_s: int = 0) -> None:
        """One message; `delay_s` (at most SQS's 900) holds it back, for a retry's back-off."""
        arguments = {"DelaySeconds": min(900, delay_s)} if delay_s else {}
        self.client.send_message(QueueUrl=self.url, MessageBody=encode(task_id), **arguments)

    def send_after_write(self, task_id: str, *, delay_s: int = 0) -> bool:
        """A send that follows a write already made (a retry going back to Pending): a failure
        is logged, not raised, since convergence dispatches Pending tasks again (step 2, once
        their retry_at has passed). False when it failed."""
        try:
            self.send(task_id, delay_s=delay_s)
        except Exception:
            logger.exception("could not queue task %s; convergence will", task_id)
            return False
        return True

    def send_many(self, task_ids: list[str]) -> list[str]:
        """SendMessageBatch, ten a call; returns the ids SQS did not take (to log and leave
        to the next pass)."""
        failed: list[str] = []
        for start in range(0, len(task_ids), 10):
            chunk = task_ids[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": encode(t)} for i, t in enumerate(chunk)]
            answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
        return failed


def encode(task_id: str) -> str:
    return json.dumps({"taskId": task_id}, separators=(",", ":"))


def decode(body: str) -> str:
    """The task id from a message body; ValueError for anything else (a poison message)."""
    message = json.loads(body)
    task_id = message.get("taskId") if isinstance(message, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("message has no taskId")
    return task_id
