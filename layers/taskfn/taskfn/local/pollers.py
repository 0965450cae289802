"""SQS event-source mappings: receive batches, invoke the function, delete what succeeded.

Failed records are left alone, so the queue's own visibility timeout and redrive policy
bring them back or move them to the dead-letter queue, as with Lambda in AWS.
"""

from __future__ import annotations

import base64
import sys
import threading
import traceback
from typing import Any

import boto3

from taskfn.local.invoke import Invoker
from taskfn.local.provision import REGION, Provisioned
from taskfn.local.template import SqsSource, Template

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


class SqsPoller:
    """Worker threads feeding one queue to one function."""

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

    def start(self) -> None:
        """Start the workers; each has its own client, made here from the environment."""
        session = boto3.session.Session()
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
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self, client: Any) -> None:
        while not self.stop_event.is_set():
            try:
                answer = client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=max(1, min(self.source.batch_size, RECEIVE_LIMIT)),
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:
                if self.stop_event.is_set():
                    return
                traceback.print_exc(file=sys.stderr)
                self.stop_event.wait(1)
                continue
            messages = answer.get("Messages") or []
            if messages:
                self.process(client, messages)

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


class Pollers:
    """One SqsPoller per SQS event source of the template, stopped by one Event."""

    def __init__(
        self,
        template: Template,
        provisioned: Provisioned,
        invoker: Invoker,
        *,
        workers: int = 4,
    ) -> None:
        self.stop_event = threading.Event()
        self.pollers = [
            SqsPoller(
                source,
                provisioned.refs[source.queue_id],
                provisioned.attrs[(source.queue_id, "Arn")],
                invoker,
                workers=workers,
                stop_event=self.stop_event,
            )
            for source in template.sqs_sources
        ]

    def start(self) -> None:
        for poller in self.pollers:
            poller.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for poller in self.pollers:
            poller.stop(timeout)
