"""DynamoDB stream → callback queue: a task entering Completed with a completion callback URL
gets its guid queued for the callback Lambda. The mapping's filter lets only such changes in;
a failure raises, so the stream delivers the batch again."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn import wiring
from taskfn.services.callbacks import queue_callbacks

logger = Logger()
queue = wiring.callback_queue()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    if queue is None:
        raise RuntimeError("CALLBACK_QUEUE_URL is not set")
    queued = queue_callbacks(event.get("Records") or [], queue)
    logger.info("callbacks queued", extra={"count": len(queued)})
    return {"queued": len(queued)}
