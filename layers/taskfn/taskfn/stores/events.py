"""Task events kept for replay: one partition per owner, items in the order they were written.

An item holds the events of one stream batch for one owner, compressed: events of the same
tasks repeat most of their fields, so a batch of a hundred costs a few write units instead of
a hundred. Its sort key is `<written ms, 13 digits>-<first stream sequence number>`; an event's
id is `<sort key>.<index in the item>`. A reader resumes from an id with one Query.

Ids follow write time, and writers from several stream shards may commit slightly out of
order, so a reader only takes items older than a settle interval: an item committed late
(but within the interval) is never skipped by a reader that already moved past it.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from taskfn.errors import InvalidRequest
from taskfn.stores.table import Table, from_item, to_item

# DynamoDB items stop at 400 KB; an item's compressed events stay well below.
ITEM_MAX_BYTES = 300 * 1024
STAMP_DIGITS = 13
LATE_WRITE_ATTEMPTS = 3
# "<ms>" (a position: every event written before that millisecond was seen), or
# "<ms>-<sequence>.<index>" (an event).
EVENT_ID = re.compile(r"^(\d{1,13})(?:-(\d{1,64})\.(\d{1,6}))?$")


def partition(owner: str) -> str:
    return f"EVENTS#{owner}"


def position(ms: int) -> str:
    """The id of a point in time: resuming from it reads what was written from `ms` on."""
    return f"{ms:0{STAMP_DIGITS}d}"


@dataclass(frozen=True)
class StoredEvent:
    id: str
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Cursor:
    """Where a reader resumes: from the item `sort_key` on, skipping its events up to and
    including `seen_index` (-1: none of them seen)."""

    sort_key: str
    seen_index: int = -1

    @classmethod
    def parse(cls, event_id: str) -> Cursor:
        match = EVENT_ID.match(event_id.strip())
        if match is None:
            raise InvalidRequest(
                f"invalid Last-Event-ID {event_id[:80]!r}", "an id this stream sent, or 0"
            )
        stamp, sequence, index = match.groups()
        if sequence is None:
            return cls(position(int(stamp)))
        return cls(f"{int(stamp):0{STAMP_DIGITS}d}-{sequence}", int(index))


def _pack(events: list[dict[str, Any]]) -> bytes:
    return zlib.compress(json.dumps(events, separators=(",", ":")).encode(), 6)


def _chunks(events: list[dict[str, Any]]) -> Iterator[tuple[int, bytes]]:
    """(offset, compressed events) pieces of at most ITEM_MAX_BYTES each, in order."""
    pending = [(0, events)]
    while pending:
        offset, part = pending.pop(0)
        packed = _pack(part)
        if len(packed) <= ITEM_MAX_BYTES or len(part) == 1:
            yield offset, packed
            continue
        half = len(part) // 2
        pending[:0] = [(offset, part[:half]), (offset + half, part[half:])]


class EventStore:
    def __init__(self, table: Table, retention_s: int):
        self.table = table
        self.retention_s = retention_s

    def append(
        self,
        owner: str,
        events: list[dict[str, Any]],
        *,
        sequence: str,
        clock_ms: Callable[[], int],
        max_lag_ms: int,
    ) -> list[str]:
        """Keep one owner's events of one stream batch; returns their ids, in order. `events`
        are {kind, data} in stream order; `sequence` is the stream sequence number of the
        first one (unique per item written in the same millisecond). Expires with the
        retention through the TTL.

        An item is stamped with the time just before its write. A write that took longer than
        `max_lag_ms` (slow, retried) may land behind a reader that already moved past its
        stamp, so it is written again with a fresh stamp: a reader may see those events twice,
        never miss them."""
        ids: list[str] = []
        pieces = list(_chunks(events))
        for number, (offset, packed) in enumerate(pieces):
            suffix = sequence if offset == 0 else f"{sequence}{offset:06d}"
            for _ in range(LATE_WRITE_ATTEMPTS):
                stamp = clock_ms()
                sort_key = f"{position(stamp)}-{suffix}"
                self.table.put(
                    {
                        "PK": partition(owner),
                        "SK": sort_key,
                        "events": packed,
                        "expires_at": stamp // 1000 + self.retention_s,
                    }
                )
                if clock_ms() - stamp <= max_lag_ms:
                    break
            else:
                raise RuntimeError("task events: every write took longer than the settle time")
            end = pieces[number + 1][0] if number + 1 < len(pieces) else len(events)
            ids.extend(f"{sort_key}.{index}" for index in range(end - offset))
        return ids

    def read(self, owner: str, cursor: Cursor, *, before_ms: int, limit: int) -> list[StoredEvent]:
        """Events from `cursor` on, written before `before_ms`, oldest first, at most about
        `limit` (whole items: an item is never split between two answers)."""
        upper = position(before_ms)
        if cursor.sort_key >= upper:
            return []
        arguments: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :from AND :to",
            "ExpressionAttributeValues": to_item(
                {":pk": partition(owner), ":from": cursor.sort_key, ":to": upper}
            ),
            "ConsistentRead": True,
        }
        found: list[StoredEvent] = []
        while len(found) < limit:
            answer = self.table.client.query(**arguments, Limit=max(1, min(100, limit)))
            for raw in answer.get("Items", []):
                item = from_item(raw)
                found.extend(_unpack(item, cursor))
            last = answer.get("LastEvaluatedKey")
            if not last:
                break
            arguments["ExclusiveStartKey"] = last
        return found


def _unpack(item: dict[str, Any], cursor: Cursor) -> list[StoredEvent]:
    sort_key = item["SK"]
    events = json.loads(zlib.decompress(bytes(item["events"])))
    skip = cursor.seen_index if sort_key == cursor.sort_key else -1
    return [
        StoredEvent(f"{sort_key}.{index}", event["kind"], event["data"])
        for index, event in enumerate(events)
        if index > skip
    ]
