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
    lookup: Callable[[str], T | None],
    item_id: str,
    caller: Caller,
    noun: str,
    *,
    valid: Callable[[str], bool] = ids.is_id,
) -> T:
    """The caller's record, or NotFound: never 403, so ids leak nothing about others. An id
    that is not `valid` (our ids by default; the Cell API's guids are the client's) is
    answered without a read."""
    record = lookup(item_id) if valid(item_id) else None
    if record is None or record.owner != caller.user:
        raise NotFound(f"{noun} not found")
    return record
