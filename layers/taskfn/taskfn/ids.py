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
