"""One rule for every read by id: unknown, malformed and another owner's ids are all 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from taskfn import ids
from taskfn.errors import NotFound
from taskfn.models import Caller


class Owned(Protocol):
    owner: str


def owned[T: Owned](
    lookup: Callable[[str], T | None], item_id: str, caller: Caller, noun: str
) -> T:
    """The caller's record, or NotFound: never 403, so ids leak nothing about others."""
    record = lookup(item_id) if ids.is_id(item_id) else None
    if record is None or record.owner != caller.user:
        raise NotFound(f"{noun} not found")
    return record
