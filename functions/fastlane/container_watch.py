"""SQS → a job's execution past its timeout is stopped (its STOPPED event then ends it as
timed out); one not yet due is watched again for the rest, in hops of at most 15 minutes
(SQS's longest delay). Records that raise go back to SQS (ReportBatchItemFailures)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.containers import ContainerRuns

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
runs = ContainerRuns.from_env()


def watch_record(record: SQSRecord) -> str:
    outcome = runs.on_watch(record.body)
    logger.info("timeout watch", extra={"body": record.body, "outcome": outcome})
    return outcome


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=watch_record, processor=processor, context=context
    )
