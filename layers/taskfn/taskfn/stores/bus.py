"""The EventBridge bus where task events are published for other AWS consumers (rules)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

SOURCE = "taskfn.tasks"
ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries
# A PutEvents request stops at 256 KB in all; a larger event goes out as a reference to its
# task, and a call carries entries up to CALL_MAX_BYTES together.
DETAIL_MAX_BYTES = 200 * 1024
CALL_MAX_BYTES = 240 * 1024
ATTEMPTS = 3


class EventBus:
    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    def publish(self, events: list[dict[str, Any]]) -> None:
        """PutEvents for `events` ({id, kind, owner, data}), retrying entries EventBridge did
        not take; raises if some are still refused, so the stream batch is delivered again
        (events are at least once)."""
        for call in _calls([self._entry(event) for event in events]):
            pending = call
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


def entry_bytes(entry: dict[str, Any]) -> int:
    """EventBridge's size of an entry: its source, detail type and detail (plus 14 for the
    time)."""
    return 14 + sum(len(entry[k].encode()) for k in ("Source", "DetailType", "Detail"))


def _calls(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The entries in order, grouped into PutEvents calls of at most ten entries and
    CALL_MAX_BYTES."""
    calls: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        bytes_ = entry_bytes(entry)
        if not calls or len(calls[-1]) == ENTRIES_PER_CALL or size + bytes_ > CALL_MAX_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(entry)
        size += bytes_
    return calls
