"""The EventBridge bus where task events are published for other AWS consumers (rules)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = "taskfn.tasks"
ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries
# PutEvents entries stop at 256 KB; a larger event goes out as a reference to the task.
DETAIL_MAX_BYTES = 240 * 1024
ATTEMPTS = 3


class EventBus:
    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    def publish(self, events: list[dict[str, Any]]) -> None:
        """PutEvents for `events` ({id, kind, owner, data}), retrying entries EventBridge did
        not take; raises if some are still refused, so the stream batch is delivered again
        (events are at least once)."""
        entries = [self._entry(event) for event in events]
        for start in range(0, len(entries), ENTRIES_PER_CALL):
            pending = entries[start : start + ENTRIES_PER_CALL]
            for attempt in range(ATTEMPTS):
                answer = self.client.put_events(Entries=pending)
                if not answer.get("FailedEntryCount"):
                    break
                pending = [
                    entry
                    for entry, result in zip(pending, answer["Entries"], strict=True)
                    if result.get("ErrorCode")
                ]
                time.sleep(0.1 * 2**attempt)
            else:
                raise RuntimeError(f"EventBridge refused {len(pending)} task events")

    def _entry(self, event: dict[str, Any]) -> dict[str, Any]:
        detail = json.dumps(
            {"id": event["id"], "owner": event["owner"], **event["data"]}, separators=(",", ":")
        )
        if len(detail.encode()) > DETAIL_MAX_BYTES:
            task = event["data"].get("after") or event["data"].get("task") or {}
            detail = json.dumps(
                {"id": event["id"], "owner": event["owner"], "truncated": True,
                 "task_guid": task.get("task_guid", "")}
            )
        return {
            "EventBusName": self.name,
            "Source": SOURCE,
            "DetailType": event["kind"],
            "Detail": detail,
        }
