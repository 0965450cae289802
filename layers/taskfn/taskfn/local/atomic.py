"""DynamoDB's conditional writes are atomic; moto's are not: a threaded moto server may check
two writes' conditions before either writes, so two cells racing to start one task could both
win. The local stack (and the tests) serialize moto's DynamoDB writes so that races end as
they do in AWS: exactly one winner."""

from __future__ import annotations

import functools
import threading
from typing import Any

_lock = threading.RLock()  # reentrant: a transaction writes through put/update/delete
WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def make_dynamodb_writes_atomic() -> None:
    """Wrap moto's DynamoDB write methods in one lock, once per process."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_taskfn_atomic", False):
            continue

        @functools.wraps(method)
        def atomic(self: Any, *args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _lock:
                return __method(self, *args, **kwargs)

        atomic._taskfn_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, atomic)
