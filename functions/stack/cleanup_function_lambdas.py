"""CloudFormation custom resource: on stack deletion, delete every function Lambda."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn import wiring
from taskfn.services import stack

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> None:
    status, reason = stack.on_event(event, wiring.function_lambdas())
    logger.info("custom resource", extra={"request": event.get("RequestType"), "status": status,
                                          "reason": reason})
    stack.respond(event, context.log_stream_name, status, reason)
