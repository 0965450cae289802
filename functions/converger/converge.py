"""EventBridge schedule → one convergence pass (the six steps of reference/bbs.md)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.converger import Converger

logger = Logger()
converger = Converger.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    report = converger.run().as_dict()
    logger.info("converged", extra=report)
    return report
