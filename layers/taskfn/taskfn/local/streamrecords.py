"""DynamoDB Streams' GetRecords without moto's generic response serializer.

moto answers GetRecords through its shape-driven serializer, which walks every attribute of
every image in Python: about 1.3 ms of moto's CPU a record, for each of the four mappings
that read the table's stream, so that a task's stream records cost moto more than all of the
task's own requests (figures: local/profiling.py). A stream record never changes once
written, so here each is made into JSON once, when first read, and a page is those texts
joined. The answer is the same JSON (the same members, values and types; checked against
moto's own serializer in the tests); everything else (the iterators, their expiry, errors)
is moto's, as before.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import functools
import json
import threading
import weakref
from typing import Any

CONTENT_TYPE = "application/x-amz-json-1.0"  # what moto's serializer answers


def _unix_time(value: datetime.datetime) -> int | float:
    """moto's serializer's timestamps: seconds, to the millisecond (naive means UTC)."""
    seconds = calendar.timegm(value.utctimetuple())
    if value.microsecond:
        return seconds + (value.microsecond // 1000) / 1000.0
    return seconds


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return _unix_time(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} in a stream record")


# Beside the records, not on them: a snapshot (local/persistence.py) pickles the records,
# and would keep every text twice. A record trimmed away takes its text with it.
_texts: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_texts_lock = threading.Lock()


def record_json(record: Any) -> str:
    """A StreamRecord as GetRecords lists it, made once and kept while the record is."""
    with _texts_lock:
        text = _texts.get(record)
    if text is None:
        text = json.dumps(record.to_json(), default=_default)
        with _texts_lock:
            _texts[record] = text
    return text


def serve_records_fast() -> None:
    """Answer GetRecords from the kept texts, once per process (in moto's process)."""
    from moto.dynamodbstreams.models import ShardIterator
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    original = DynamoDBStreamsHandler.get_records
    if getattr(original, "_taskfn_fast", False):
        return

    @functools.wraps(original)
    def get_records(self: Any) -> Any:
        arn = self._get_param("ShardIterator")
        limit = self._get_param("Limit")
        backend = self.backend
        iterator = backend.shard_iterators.get(arn) if isinstance(arn, str) else None
        if iterator is None or not isinstance(limit, int | None):
            return original(self)  # moto's own answer, errors included
        shard = iterator.stream_shard
        start = iterator.sequence_number - shard.starting_sequence_number
        if start < 0:
            return original(self)
        records = shard.items[start:start + (1000 if limit is None else limit)]
        # As ShardIterator.get: after the last record read, or where it was when none.
        if records:
            last = int(records[-1].to_json()["dynamodb"]["SequenceNumber"])
            following = ShardIterator(backend, shard, "AFTER_SEQUENCE_NUMBER", last)
        else:
            following = ShardIterator(backend, shard, "AT_SEQUENCE_NUMBER",
                                      iterator.sequence_number)
        backend.shard_iterators[following.arn] = following
        after_read(backend)
        body = ('{"Records": [' + ", ".join(record_json(record) for record in records)
                + '], "NextShardIterator": ' + json.dumps(following.arn) + "}")
        return body, {"Content-Type": CONTENT_TYPE}

    get_records._taskfn_fast = True  # type: ignore[attr-defined]
    DynamoDBStreamsHandler.get_records = get_records


def after_read(backend: Any) -> None:
    """What moto's backend does after a read besides answering: the iterators' expiry."""
    from taskfn.local.streamiterators import prune

    prune(backend)
