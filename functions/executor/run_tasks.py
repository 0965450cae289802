"""SQS → executor: each record is one task id. Start (conditional), run, complete
(conditional); only the records that failed go back to SQS (ReportBatchItemFailures), and a
message that keeps failing ends in the dead-letter queue."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn import wiring
from taskfn.runtime.pool import SandboxPool
from taskfn.services.executor import Executor
from taskfn.settings import get_settings
from taskfn.stores.queue import decode

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
# Pre-started sandboxes: each runs exactly one task in a fresh process, but the Python
# start-up is paid ahead of time instead of on the task's clock. With isolation "lambda" the
# tasks run in their functions' own Lambdas and none is needed here.
sandboxes = SandboxPool(size=2 if get_settings().isolation == "process" else 0)
executor = Executor.from_env(runner=sandboxes.run)
metrics = wiring.function_metrics()


def run_record(record: SQSRecord, lambda_context: LambdaContext) -> str:
    task_id = decode(record.body)
    outcome = executor.run(task_id, lambda_context.get_remaining_time_in_millis)
    # A line per task is most of what the executor logs (CloudWatch Logs bills ingestion):
    # the tasks that did not succeed at INFO, the others at DEBUG (the task keeps its own).
    log = logger.debug if outcome == "succeeded" else logger.info
    log("task handled", extra={"taskId": task_id, "outcome": outcome})
    return outcome


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    # The batch's counts of its functions' tasks, one write per function at the end.
    with metrics.gathered():
        return process_partial_response(
            event=event, record_handler=run_record, processor=processor, context=context
        )
