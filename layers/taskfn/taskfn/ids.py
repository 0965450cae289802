"""Identifiers: 24 hex digits like GreenCloud's (MongoDB ObjectId-shaped), time-ordered."""

from __future__ import annotations

import os
import re
import time

_ID = re.compile(r"^[0-9a-f]{24}$")
# A task's key may also be a guid the Cell API's client chose (BBS's pattern); it is bounded
# because it is part of a DynamoDB key.
GUID_PATTERN = r"^[a-zA-Z0-9_-]+$"
GUID_MAX_LENGTH = 256
_GUID = re.compile(GUID_PATTERN)


def new_id(now: float | None = None) -> str:
    """4 bytes of seconds then 8 random bytes: sortable by creation, unguessable."""
    seconds = int(time.time() if now is None else now)
    return seconds.to_bytes(4, "big").hex() + os.urandom(8).hex()


def is_id(value: str) -> bool:
    """True for a well-formed id; anything else can be answered 404 without a read."""
    return bool(_ID.match(value or ""))


def is_task_guid(value: str) -> bool:
    """True for anything a task can be keyed by: our ids and the Cell API's guids."""
    return bool(value) and len(value) <= GUID_MAX_LENGTH and bool(_GUID.match(value))


def new_uuid7(now_ns: int | None = None, random_bits: bytes | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of milliseconds, then 74 random bits, so ids sort by
    creation (fastlane's executions are listed newest first by key). `random_bits` (10
    bytes) make it deterministic: a schedule's fire names its run. Python 3.13 has no
    uuid.uuid7."""
    millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    tail = int.from_bytes(random_bits[:10] if random_bits else os.urandom(10), "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (tail >> 68 & 0xFFF) << 64 \
        | 0b10 << 62 | tail & (2**62 - 1)
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_uuid(value: str) -> bool:
    """A UUID in its canonical lower-case form (what taskfn writes and answers)."""
    return bool(_UUID.match(value or ""))
