"""Identifiers: 24 hex digits like GreenCloud's (MongoDB ObjectId-shaped), time-ordered."""

from __future__ import annotations

import os
import re
import time

_ID = re.compile(r"^[0-9a-f]{24}$")


def new_id(now: float | None = None) -> str:
    """4 bytes of seconds then 8 random bytes: sortable by creation, unguessable."""
    seconds = int(time.time() if now is None else now)
    return seconds.to_bytes(4, "big").hex() + os.urandom(8).hex()


def is_id(value: str) -> bool:
    """True for a well-formed id; anything else can be answered 404 without a read."""
    return bool(_ID.match(value or ""))
