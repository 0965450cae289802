"""Idempotency keys of creates (an `Idempotency-Key` header on a task create or a Cell API
desire): the first request with a key claims it with one conditional put; a retry with the
same key, caller and request finds the claim and gets the first request's task; the same key
with another request is refused. A claim lives 24 hours (DynamoDB's TTL on expires_at, and
the put's condition treats an expired claim as gone, since the TTL deletes lazily). Once the
first request has written its task, the claim is marked settled (one UpdateItem): a retry
that then finds no task knows it was deleted since, and does not create it again; a claim
not settled is a first request that stopped before its write, and a retry writes it.

Items: "IDEM#<user>#<sha256 of route and key>" / "IDEM", so that a key is never stored as the
caller wrote it and one caller's keys never meet another's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from taskfn.errors import InvalidRequest
from taskfn.stores.table import Table

KEY_TTL_S = 24 * 3600
KEY_MAX_LENGTH = 255


def check_key(key: str) -> str:
    """A key as the API takes it: 1 to 255 printable ASCII characters."""
    if not 0 < len(key) <= KEY_MAX_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidRequest("invalid Idempotency-Key",
                             f"1 to {KEY_MAX_LENGTH} printable ASCII characters")
    return key


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """Who holds a key: `first` when this request just claimed it; otherwise the claim found,
    with whether it was made for the same request (`same`)."""

    task_id: str
    first: bool
    same: bool = True
    settled: bool = False  # the first request wrote its task


class IdempotencyKeys:
    def __init__(self, table: Table):
        self.table = table

    def claim(self, user: str, route: str, key: str, request: str, task_id: str,
              now_s: int) -> Claim:
        """Claim `key` for `task_id`, or find who holds it. `request` fingerprints the
        request (route, target and body) so that a reuse for another one is told apart."""
        item = {
            "PK": self._pk(user, route, key),
            "SK": "IDEM",
            "task_guid": task_id,
            "request": request,
            "expires_at": now_s + KEY_TTL_S,
        }
        first, old = self.table.put_if(
            item, condition="attribute_not_exists(PK) OR expires_at <= :now",
            condition_values={":now": now_s})
        if first or old is None:
            return Claim(task_id, first=True)
        return Claim(str(old["task_guid"]), first=False, same=old.get("request") == request,
                     settled=bool(old.get("settled")))

    def settle(self, user: str, route: str, key: str) -> None:
        """Mark the claim's task written (see the module's docstring)."""
        self.table.update(self._pk(user, route, key), "IDEM", set_values={"settled": True},
                          condition="attribute_exists(PK)")

    @staticmethod
    def _pk(user: str, route: str, key: str) -> str:
        return f"IDEM#{user}#{fingerprint(route, key)}"
