"""SQS (JobWebhookQueue, JobNotifyQueue) → a job's webhook POSTs and e-mails, each message
one hook of one execution; a failed webhook is queued again by the delivery itself (2^n × 5 s,
up to its own retries), so only records that raised go back to SQS (ReportBatchItemFailures)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.hooks import JobHooks

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
hooks = JobHooks.from_env()


def deliver_record(record: SQSRecord) -> str:
    outcome = hooks.deliver(record.body)
    logger.info("job hook handled", extra={"outcome": outcome})
    return outcome


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=deliver_record, processor=processor, context=context
    )
