"""The SQS task queue: a message is only a task id; the record holds the truth."""

from __future__ import annotations

import json
from typing import Any


class TaskQueue:
    def __init__(self, client: Any, url: str):
        self.client = client
        self.url = url

    def send(self, task_id: str) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=encode(task_id))


def encode(task_id: str) -> str:
    return json.dumps({"taskId": task_id}, separators=(",", ":"))


def decode(body: str) -> str:
    """The task id from a message body; ValueError for anything else (a poison message)."""
    message = json.loads(body)
    task_id = message.get("taskId") if isinstance(message, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("message has no taskId")
    return task_id
