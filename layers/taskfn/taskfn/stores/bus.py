"""The EventBridge bus where task events are published for other AWS consumers (rules).

An event goes out only when a rule on the bus may take it: each entry costs $1 per million
whether or not anything listens, three per task. The bus's rules are read with ListRules
(free) at most once a refresh period; a rule's pattern narrows what is published only where
that is certain (`source`, `detail-type` as lists of plain strings); any other pattern, and a
failure to read the rules, publishes everything, as before. Archives and replays listen
through managed rules, which ListRules returns too. A rule created on the bus takes events
from the next refresh on (at most `refresh_s` later).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

SOURCE = "taskfn.tasks"
ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries
# A PutEvents request stops at 256 KB in all; a larger event goes out as a reference to its
# task, and a call carries entries up to CALL_MAX_BYTES together.
DETAIL_MAX_BYTES = 200 * 1024
CALL_MAX_BYTES = 240 * 1024
ATTEMPTS = 3


EVERY_KIND = None  # what a rule takes whose pattern is not narrowed here: every event


def kinds_taken(pattern_text: str | None) -> frozenset[str] | None:
    """The task event kinds (detail types) a rule's pattern may take: EVERY_KIND unless the
    pattern says for certain; an empty set when it can take none of ours."""
    try:
        pattern = json.loads(pattern_text or "{}")
    except ValueError:
        return EVERY_KIND
    if not isinstance(pattern, dict):
        return EVERY_KIND
    sources = _plain_strings(pattern.get("source"))
    if sources is not None and SOURCE not in sources:
        return frozenset()
    return _plain_strings(pattern.get("detail-type"))


def _plain_strings(matcher: Any) -> frozenset[str] | None:
    """A pattern field that matches exactly these strings, or None (absent, or a matcher
    more than equality: prefix, anything-but, ...)."""
    if isinstance(matcher, list) and matcher and all(isinstance(v, str) for v in matcher):
        return frozenset(matcher)
    return None


class RuleListeners:
    """Which task event kinds some enabled rule on the bus may take, read again at most once
    every `refresh_s`."""

    def __init__(self, client: Any, bus_name: str, refresh_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.bus_name = bus_name
        self.refresh_s = refresh_s
        self.clock = clock
        self._kinds: frozenset[str] | None = EVERY_KIND
        self._read_at: float | None = None

    def takes(self, kind: str) -> bool:
        kinds = self.kinds()
        return kinds is EVERY_KIND or kind in kinds

    def kinds(self) -> frozenset[str] | None:
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.refresh_s:
            self._kinds, self._read_at = self._read(), now
        return self._kinds

    def _read(self) -> frozenset[str] | None:
        taken: set[str] = set()
        try:
            for rule in self._rules():
                if rule.get("State") == "DISABLED":
                    continue
                kinds = kinds_taken(rule.get("EventPattern"))
                if kinds is EVERY_KIND:
                    return EVERY_KIND
                taken |= kinds
        except (BotoCoreError, ClientError) as error:
            logger.warning("rules of bus %s not read (%s): publishing every event",
                           self.bus_name, error)
            return EVERY_KIND
        return frozenset(taken)

    def _rules(self) -> list[dict[str, Any]]:
        rules, token = [], None
        while True:
            page = self.client.list_rules(EventBusName=self.bus_name,
                                          **({"NextToken": token} if token else {}))
            rules += page.get("Rules", [])
            token = page.get("NextToken")
            if not token:
                return rules


class EventBus:
    def __init__(self, client: Any, name: str, listeners: RuleListeners | None = None):
        self.client = client
        self.name = name
        # None: publish every event (no rule reading).
        self.listeners = listeners

    def publish(self, events: list[dict[str, Any]]) -> int:
        """PutEvents for the `events` ({id, kind, owner, data}) some rule may take, retrying
        entries EventBridge did not take; raises if some are still refused, so the stream
        batch is delivered again (events are at least once). Returns how many went out."""
        if self.listeners is not None:
            events = [event for event in events if self.listeners.takes(event["kind"])]
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
        return len(events)

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
