"""DynamoDB stream → chained tasks: a task entering Completed with a response runs the
triggers on its function (services/triggers.py). The mapping's filter lets only such changes
in; a failure raises, so the stream delivers the batch again (the children's ids make that
harmless)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.triggers import TriggerService

logger = Logger()
triggers = TriggerService.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    fired = triggers.fire(event.get("Records") or [])
    logger.info("triggers fired", extra={"count": len(fired)})
    return {"fired": len(fired)}
