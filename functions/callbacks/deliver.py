"""SQS → completion callbacks: each record is one task guid. Resolving, POST, delete (see
taskfn.services.callbacks); only records that raised go back to SQS (ReportBatchItemFailures).
A callback that gave up is not a failed record: the task stays Resolving and convergence
sends it again, so the queue does not retry it on top."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.callbacks import CallbackDelivery
from taskfn.stores.queue import decode

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
delivery = CallbackDelivery.from_env()


def deliver_record(record: SQSRecord) -> str:
    task_guid = decode(record.body)
    outcome = delivery.deliver(task_guid)
    logger.info("callback handled", extra={"taskGuid": task_guid, "outcome": outcome})
    return outcome


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=deliver_record, processor=processor, context=context
    )
