"""DynamoDB Streams' shard iterators expire after 15 minutes; moto's never do. Every read of
a stream makes a new iterator (its next), and the pollers read each stream several times a
second, so an idle local stack grew by about 120 MB an hour of iterators nobody will use
again. Here they expire as in AWS, which bounds them to the last 15 minutes' worth."""

from __future__ import annotations

import functools
import time
from typing import Any

EXPIRE_S = 15 * 60  # DynamoDB Streams: "A shard iterator expires 15 minutes after it is returned"
PRUNE_EVERY_S = 30.0


def expire_shard_iterators() -> None:
    """Stamp each new iterator, and drop the expired ones now and then, once per process."""
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

    if getattr(ShardIterator.__init__, "_taskfn_stamped", False):
        return
    created = ShardIterator.__init__

    @functools.wraps(created)
    def stamped(self: Any, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        self.taskfn_created = time.monotonic()

    stamped._taskfn_stamped = True  # type: ignore[attr-defined]
    ShardIterator.__init__ = stamped
    read = DynamoDBStreamsBackend.get_records

    @functools.wraps(read)
    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        answer = read(self, iterator_arn, limit)
        prune(self)
        return answer

    DynamoDBStreamsBackend.get_records = get_records


def prune(backend: Any, now: float | None = None) -> int:
    """Drop the backend's expired iterators (the oldest first: the dict keeps them in the
    order they were made), at most every PRUNE_EVERY_S; how many."""
    now = time.monotonic() if now is None else now
    if now < getattr(backend, "taskfn_pruned_at", 0.0) + PRUNE_EVERY_S:
        return 0
    backend.taskfn_pruned_at = now
    dropped = 0
    try:
        for arn, iterator in list(backend.shard_iterators.items()):
            if getattr(iterator, "taskfn_created", now) > now - EXPIRE_S:
                break
            backend.shard_iterators.pop(arn, None)
            dropped += 1
    except RuntimeError:  # changed while copied (another request): the next time
        pass
    return dropped
