"""SQS (LogPumpQueue, one message at a time) → an execution's live output: the pump that
holds the execution's lease copies its log stream into chunks and sends every connection
what it has not had, then closes them as fastlane does (services/livelogs.py). Before its
Lambda's time runs out it hands the lease on with a message of its own; a message that
raises goes back to SQS."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.livelogs import LiveLogs

logger = Logger()
live = LiveLogs.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    outcomes = []
    for record in (event or {}).get("Records") or []:
        outcome = live.pump(str(record.get("body", "")), context.get_remaining_time_in_millis)
        logger.info("log pump", extra={"outcome": outcome})
        outcomes.append(outcome)
    return {"outcomes": outcomes}
