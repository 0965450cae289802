"""Task events (reference/bbs.md): TaskCreated {task}, TaskChanged {before, after} and
TaskRemoved {task}, made from the table's stream, never written beside a task change (no dual
writes). Each stream batch is kept for replay (EventStore) and published on the EventBridge
bus; readers follow their own tasks' events from the last id they saw.

Delivery is at least once: a stream batch that fails is delivered again, whole. A change that
moves only `updated_at` (a heartbeat) is not an event; BBS has no heartbeats to report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskfn import aws, wiring
from taskfn.models import Caller, TaskRecord
from taskfn.settings import Settings, get_settings
from taskfn.stores.bus import EventBus, RuleListeners
from taskfn.stores.events import Cursor, EventStore, StoredEvent, position
from taskfn.stores.table import from_item

logger = logging.getLogger(__name__)

CREATED, CHANGED, REMOVED = "task_created", "task_changed", "task_removed"
TaskView = Callable[[TaskRecord], dict[str, Any]]


@dataclass(frozen=True)
class TaskEvent:
    owner: str
    sequence: str  # the stream record's sequence number
    kind: str
    data: dict[str, Any]


def _task(image: Mapping[str, Any] | None) -> TaskRecord | None:
    """A task record from a stream image; None for other items (tokens, functions, events)."""
    if not image:
        return None
    item = from_item(image)
    if item.get("SK") != "TASK" or not str(item.get("PK", "")).startswith("TASK#"):
        return None
    return TaskRecord.model_validate(item)


def event_of(record: Mapping[str, Any], view: TaskView) -> TaskEvent | None:
    """The event of one stream record (Lambda's DynamoDB event shape), or None."""
    change = record.get("dynamodb") or {}
    old, new = _task(change.get("OldImage")), _task(change.get("NewImage"))
    sequence = str(change.get("SequenceNumber", "0"))
    name = record.get("eventName")
    if name == "INSERT" and new is not None:
        return TaskEvent(new.owner, sequence, CREATED, {"task": view(new)})
    if name == "REMOVE" and old is not None:
        return TaskEvent(old.owner, sequence, REMOVED, {"task": view(old)})
    if name == "MODIFY" and old is not None and new is not None:
        before, after = view(old), view(new)
        if _without_time(before) == _without_time(after):
            return None
        return TaskEvent(new.owner, sequence, CHANGED, {"before": before, "after": after})
    return None


def _without_time(view: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in view.items() if key != "updated_at"}


@dataclass(frozen=True)
class EventsPage:
    """What a reader gets: events oldest first, and the id to resume from."""

    events: list[StoredEvent]
    resume_id: str


class TaskEvents:
    def __init__(
        self,
        store: EventStore,
        bus: EventBus | None,
        settings: Settings,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.bus = bus
        self.settings = settings
        self.clock_ns = clock_ns
        self.sleep = sleep
        # Entries put on the bus so far (those some rule may take), for the handler's report.
        self.bus_entries = 0

    @classmethod
    def from_env(cls) -> TaskEvents:
        settings = get_settings()
        client = aws.LazyClient("events")
        listeners = RuleListeners(client, settings.event_bus_name,
                                  settings.event_rules_refresh_s)
        bus = EventBus(client, settings.event_bus_name, listeners)
        return cls(
            EventStore(wiring.table(), settings.events_retention_s),
            bus if settings.event_bus_name else None,
            settings,
        )

    def _now_ms(self) -> int:
        return self.clock_ns() // 1_000_000

    # --- from the stream ---------------------------------------------------------------

    def publish(self, records: list[Mapping[str, Any]], view: TaskView) -> int:
        """Keep and publish the events of one stream batch; returns how many. Raises when
        either fails, so the whole batch comes again."""
        events = []
        for record in records:
            try:
                event = event_of(record, view)
            except Exception:  # one unreadable item must not stop every user's events
                logger.exception("stream record %s skipped: its task cannot be read",
                                 (record.get("dynamodb") or {}).get("SequenceNumber"))
                continue
            if event is not None:
                events.append(event)
        if not events:
            return 0
        by_owner: dict[str, list[TaskEvent]] = {}
        for event in events:
            by_owner.setdefault(event.owner, []).append(event)
        published = []
        for owner, owned in by_owner.items():
            stored = [{"kind": event.kind, "data": event.data} for event in owned]
            ids = self.store.append(
                owner,
                stored,
                sequence=owned[0].sequence,
                clock_ms=self._now_ms,
                # Half the settle time: a reader never passes a stamp that is not yet written.
                max_lag_ms=int(self.settings.events_settle_s * 500),
            )
            published.extend(
                {"id": event_id, "owner": owner, "kind": event.kind, "data": event.data}
                for event_id, event in zip(ids, owned, strict=True)
            )
        if self.bus is not None:
            self.bus_entries += self.bus.publish(published)
        return len(events)

    # --- to readers ----------------------------------------------------------------------

    def read(
        self,
        caller: Caller,
        last_event_id: str | None,
        *,
        wait_s: float,
        time_left_s: Callable[[], float] | None = None,
    ) -> EventsPage:
        """The caller's task events after `last_event_id` ("0": from the oldest retained;
        none: from now, as BBS streams). Waits up to `wait_s` for the first ones."""
        settle_ms = int(self.settings.events_settle_s * 1000)
        if last_event_id:
            cursor = Cursor.parse(last_event_id)
        else:
            cursor = Cursor(position(self._now_ms() - settle_ms))
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            before_ms = self._now_ms() - settle_ms
            events = self.store.read(
                caller.user, cursor, before_ms=before_ms, limit=self.settings.events_page_max
            )
            if events:
                return EventsPage(events, events[-1].id)
            left = deadline - time.monotonic()
            if time_left_s is not None:
                left = min(left, time_left_s() - 2.0)
            if left <= 0:
                resume = max(cursor.sort_key, position(before_ms))
                if resume == cursor.sort_key and last_event_id:
                    resume = last_event_id
                return EventsPage([], resume)
            self.sleep(min(self.settings.events_poll_s, left))
