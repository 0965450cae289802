"""Event-source mappings. SQS: receive batches, invoke the function, delete what succeeded;
failed records are left alone, so the queue's own visibility timeout and redrive policy bring
them back or move them to the dead-letter queue, as with Lambda in AWS. DynamoDB streams: read
each shard in order, keep the records the mapping's filters let through, invoke the function
with them, and retry a failing batch a few times before giving it up (in AWS it would go to
the mapping's on-failure destination).
"""

from __future__ import annotations

import base64
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from taskfn.local import profiling
from taskfn.local.invoke import Invoker
from taskfn.local.provision import REGION, Provisioned
from taskfn.local.template import SqsSource, StreamSource, Template

RECEIVE_LIMIT = 10  # ReceiveMessage never returns more


def _message_attributes(attributes: dict[str, dict]) -> dict[str, dict]:
    """SQS API message attributes in the Lambda event's camelCase shape."""
    converted = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(item).decode() for item in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType"),
        }
    return converted


def build_sqs_event(messages: list[dict], queue_arn: str) -> dict[str, Any]:
    """The Lambda event for a batch of messages from ReceiveMessage."""
    records = []
    for message in messages:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": _message_attributes(message.get("MessageAttributes") or {}),
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def succeeded_messages(
    messages: list[dict], answer: Any, report_batch_item_failures: bool
) -> list[dict]:
    """The messages to delete after a successful invocation.

    As in AWS, an answer naming an unknown or empty itemIdentifier fails the whole batch.
    """
    if not report_batch_item_failures:
        return messages
    failures = (answer or {}).get("batchItemFailures") if isinstance(answer, dict) else None
    if not failures:
        return messages
    ids = {message["MessageId"] for message in messages}
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return []
        failed.add(identifier)
    return [message for message in messages if message["MessageId"] not in failed]


# Workers of a queue whose messages are sessions (batch size 1): at most this many at once.
SESSION_WORKERS = 8


class SqsPoller:
    """Worker threads feeding one queue to one function, scaled by demand as Lambda's
    pollers are: one worker long-polls an idle queue; a worker that got a batch wakes a
    parked one to go on polling while it processes, up to `workers`; a worker whose poll
    came back empty parks when another is polling. An idle stack costs moto one receive a
    second per queue, not one per worker."""

    def __init__(
        self,
        source: SqsSource,
        queue_url: str,
        queue_arn: str,
        invoker: Invoker,
        *,
        workers: int = 4,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.invoker = invoker
        self.workers = workers
        self.stop_event = stop_event or threading.Event()
        self._threads: list[threading.Thread] = []
        self._demand = threading.Condition()
        self._polling = 0  # workers between batches (polling, or about to)
        self._parked = 0  # workers waiting to be called back
        self._wakes = 0  # parked workers called back to poll, not yet up

    def start(self) -> None:
        """Start the workers; each has its own client, made here from the environment."""
        session = boto3.session.Session()
        self._polling = self.workers
        for number in range(self.workers):
            client = session.client("sqs")
            thread = threading.Thread(
                target=self._run,
                args=(client,),
                name=f"taskfn-sqs-{self.source.function_id}-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the workers to stop and wait for their current batch to end."""
        self.stop_event.set()
        with self._demand:
            self._demand.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self, client: Any) -> None:
        while not self.stop_event.is_set():
            try:
                with profiling.section(f"poller:sqs-receive: {self.source.function_id}"):
                    messages = self.fetch(client)
            except Exception:
                if self.stop_event.is_set():
                    return
                traceback.print_exc(file=sys.stderr)
                self.stop_event.wait(1)
                continue
            if messages:
                self._busy()
                try:
                    with profiling.section(f"poller:sqs: {self.source.function_id}"):
                        self.process(client, messages)
                finally:
                    with self._demand:
                        self._polling += 1
            else:
                self._park_if_spare()

    def _busy(self) -> None:
        """This worker goes off to process a batch: if nobody else polls now, wake one."""
        with self._demand:
            self._polling -= 1
            if self._polling == 0 and self._parked:
                self._parked -= 1
                self._wakes += 1
                self._polling += 1
                self._demand.notify()

    def _park_if_spare(self) -> None:
        """After an empty poll: wait to be called back, unless this is the only poller."""
        with self._demand:
            if self._polling <= 1:
                return
            self._polling -= 1
            self._parked += 1
            while not self._wakes and not self.stop_event.is_set():
                self._demand.wait(5)
            if self._wakes:
                self._wakes -= 1  # the waker counted this worker as polling again
            else:
                self._parked -= 1

    def fetch(self, client: Any) -> list[dict]:
        """One long poll (1 s); the messages it got (none when the queue was empty)."""
        answer = client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(self.source.batch_size, RECEIVE_LIMIT)),
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages") or []

    def process(self, client: Any, messages: list[dict]) -> None:
        """Invoke the function with one batch and delete the records that succeeded."""
        function_id = self.source.function_id
        try:
            answer = self.invoker.invoke(function_id, build_sqs_event(messages, self.queue_arn))
        except Exception:
            sys.stderr.write(f"taskfn local: {function_id} failed a batch of {len(messages)}\n")
            traceback.print_exc(file=sys.stderr)
            return
        done = succeeded_messages(messages, answer, self.source.report_batch_item_failures)
        if len(done) < len(messages):
            sys.stderr.write(
                f"taskfn local: {function_id}: {len(messages) - len(done)} of "
                f"{len(messages)} records failed\n"
            )
        for start in range(0, len(done), RECEIVE_LIMIT):
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(done[start : start + RECEIVE_LIMIT])
            ]
            client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


def poll_until_stopped(stop: threading.Event, step: Callable[[], bool], *, idle_s: float) -> None:
    """Run `step` until `stop` is set, as an event-source mapping keeps polling: a failing
    step is printed and tried again a second later; one that found nothing waits `idle_s`."""
    while not stop.is_set():
        try:
            busy = step()
        except Exception:
            if stop.is_set():
                return
            traceback.print_exc(file=sys.stderr)
            stop.wait(1)
            continue
        if not busy and idle_s:
            stop.wait(idle_s)


def matches(pattern: Any, value: Any) -> bool:
    """An EventBridge-style filter pattern, for what the template uses: every key of a
    mapping must match, a list is the values allowed, and `{"prefix": p}` matches strings
    starting with p. Other operators never match (so a filter the template adds later fails
    loudly in tests rather than passing everything)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(inner, value[key]) for key, inner in pattern.items()
        )
    if isinstance(pattern, list):
        return any(_allows(option, value) for option in pattern)
    return pattern == value


def _allows(option: Any, value: Any) -> bool:
    if isinstance(option, dict):
        prefix = option.get("prefix") if set(option) == {"prefix"} else None
        return isinstance(prefix, str) and isinstance(value, str) and value.startswith(prefix)
    return option == value


def build_stream_record(record: dict, stream_arn: str) -> dict[str, Any]:
    """A GetRecords record in the shape of a Lambda DynamoDB stream event record."""
    change = dict(record["dynamodb"])
    moment = change.get("ApproximateCreationDateTime")
    if hasattr(moment, "timestamp"):
        change["ApproximateCreationDateTime"] = int(moment.timestamp())
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


def passes(record: dict, filters: tuple[dict, ...]) -> bool:
    """Whether a mapping with these FilterCriteria patterns hands `record` to its function."""
    return not filters or any(matches(pattern, record) for pattern in filters)


class StreamShards:
    """A table's stream read shard by shard, in order, each from where its last read stopped,
    as Lambda's mapping reads it; records come in the Lambda event's shape. `positions` (shard
    id -> the last sequence number read) says where to go on from in shards already read."""

    def __init__(self, client: Any, stream_arn: str, starting_position: str = "TRIM_HORIZON",
                 positions: dict[str, str] | None = None):
        self.client = client
        self.stream_arn = stream_arn
        self.starting_position = starting_position
        self.iterators: dict[str, str | None] = {}
        self.positions: dict[str, str] = dict(positions or {})
        self.lost = False  # a shard's iterator failed: `find` it again

    def find(self) -> None:
        """Start reading the shards not seen yet."""
        description = self.client.describe_stream(StreamArn=self.stream_arn)
        self.lost = False
        for shard in description["StreamDescription"].get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self.iterators:
                continue
            where: dict[str, str] = {"ShardIteratorType": self.starting_position}
            if shard_id in self.positions:
                where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                         "SequenceNumber": self.positions[shard_id]}
            self.iterators[shard_id] = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, **where)["ShardIterator"]

    def read(self) -> Iterator[list[dict]]:
        """One page of new records per open shard (a closed shard read to its end is left).
        A page counts as read (`positions`) once the caller asks for the next one. A shard
        whose iterator fails (expired, or from a moto since restarted) is found again from
        its position at the next `find`."""
        for shard_id, iterator in list(self.iterators.items()):
            if iterator is None:
                continue
            try:
                answer = self.client.get_records(ShardIterator=iterator, Limit=1000)
            except Exception:
                del self.iterators[shard_id]
                self.lost = True
                raise
            self.iterators[shard_id] = answer.get("NextShardIterator")
            records = answer.get("Records", [])
            yield [build_stream_record(r, self.stream_arn) for r in records]
            if records:
                self.positions[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]


class StreamPoller:
    """One thread reading every shard of a table's stream into one function; with
    `checkpoints` (local/checkpoints.py), going on from the position kept there, and keeping
    it (at most every CHECKPOINT_EVERY_S, and when stopped)."""

    ATTEMPTS = 3
    SHARDS_EVERY_S = 10.0
    CHECKPOINT_EVERY_S = 0.5

    def __init__(
        self,
        source: StreamSource,
        stream_arn: str,
        invoker: Invoker,
        *,
        stop_event: threading.Event | None = None,
        idle_s: float = 0.2,
        checkpoints: Any = None,
    ) -> None:
        self.source = source
        self.stream_arn = stream_arn
        self.invoker = invoker
        self.stop_event = stop_event or threading.Event()
        self.idle_s = idle_s
        self.checkpoints = checkpoints
        self._shards_due = 0.0
        self._thread: threading.Thread | None = None
        self._shards: StreamShards | None = None
        self._kept: dict[str, str] = {}
        self._checkpoint_due = 0.0

    def start(self) -> None:
        client = boto3.session.Session().client("dynamodbstreams")
        self._thread = threading.Thread(
            target=self._run,
            args=(client,),
            name=f"taskfn-stream-{self.source.function_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            if self._shards is not None:
                self._keep_position(self._shards, force=True)

    def _run(self, client: Any) -> None:
        positions: dict[str, str] | None = None
        while self.checkpoints is not None and positions is None:
            try:
                positions = self.checkpoints.load(self.source.function_id, self.stream_arn)
                if positions is None:  # first start: saying so keeps its records kept
                    positions = {}
                    self.checkpoints.save(self.source.function_id, self.stream_arn, {})
            except Exception:
                positions = None
                if self.stop_event.wait(1):
                    return
                traceback.print_exc(file=sys.stderr)
        self._kept = dict(positions or {})
        self._shards = shards = StreamShards(client, self.stream_arn,
                                             self.source.starting_position, positions)
        poll_until_stopped(self.stop_event, lambda: self._poll(shards) > 0, idle_s=self.idle_s)

    def _poll(self, shards: StreamShards) -> int:
        with profiling.section(f"poller:stream: {self.source.function_id}"):
            return self.poll(shards)

    def _keep_position(self, shards: StreamShards, *, force: bool = False) -> None:
        """Save the position when it moved (and the last save is old enough)."""
        if self.checkpoints is None or shards.positions == self._kept:
            return
        if not force and time.monotonic() < self._checkpoint_due:
            return
        self._checkpoint_due = time.monotonic() + self.CHECKPOINT_EVERY_S
        try:
            self.checkpoints.save(self.source.function_id, self.stream_arn,
                                  dict(shards.positions))
            self._kept = dict(shards.positions)
        except Exception:
            sys.stderr.write(f"taskfn local: {self.source.function_id}: stream position "
                             "not kept\n")
            traceback.print_exc(file=sys.stderr)

    def poll(self, shards: StreamShards) -> int:
        """One round over the shards; returns how many records went to the function. New
        shards are looked for every SHARDS_EVERY_S, not every round (an idle stack should not
        keep moto busy)."""
        if shards.lost or not shards.iterators or time.monotonic() >= self._shards_due:
            self._shards_due = time.monotonic() + self.SHARDS_EVERY_S
            shards.find()
        delivered = 0
        for page in shards.read():
            records = [r for r in page if passes(r, self.source.filters)]
            for start in range(0, len(records), self.source.batch_size):
                self.deliver(records[start : start + self.source.batch_size])
            delivered += len(records)
        self._keep_position(shards)
        return delivered

    def deliver(self, records: list[dict]) -> None:
        """Invoke the function with one batch, retrying a failure; the stream moves on after
        the last attempt, as a mapping with an on-failure destination does."""
        function_id = self.source.function_id
        for attempt in range(self.ATTEMPTS):
            try:
                self.invoker.invoke(function_id, {"Records": records})
                return
            except Exception:
                sys.stderr.write(f"taskfn local: {function_id} failed a stream batch\n")
                traceback.print_exc(file=sys.stderr)
                time.sleep(0.2 * 2**attempt)
        sys.stderr.write(
            f"taskfn local: {function_id}: gave up on {len(records)} stream records\n"
        )


class Pollers:
    """The template's event-source mappings (SQS and DynamoDB streams), stopped by one
    Event."""

    def __init__(
        self,
        template: Template,
        provisioned: Provisioned,
        invoker: Invoker,
        *,
        workers: int = 4,
        checkpoints: Any = None,
    ) -> None:
        self.stop_event = threading.Event()
        self.pollers = [
            SqsPoller(
                source,
                provisioned.refs[source.queue_id],
                provisioned.attrs[(source.queue_id, "Arn")],
                invoker,
                # A batch of one is a session (the live logs' pump follows an execution for
                # as long as it runs): Lambda runs one per message, so a few long ones must
                # not hold every worker of the queue.
                workers=SESSION_WORKERS if source.batch_size == 1 else workers,
                stop_event=self.stop_event,
            )
            for source in template.sqs_sources
        ]
        self.streams = [
            StreamPoller(
                source,
                provisioned.attrs[(source.table_id, "StreamArn")],
                invoker,
                stop_event=self.stop_event,
                checkpoints=checkpoints,
            )
            for source in template.stream_sources
        ]

    def start(self) -> None:
        for poller in [*self.pollers, *self.streams]:
            poller.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for poller in [*self.pollers, *self.streams]:
            poller.stop(timeout)
