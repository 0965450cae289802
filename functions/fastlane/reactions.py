"""DynamoDB stream → fastlane's webhooks and e-mails: an attempt of a job's task that ended
gets its job's hooks for that ending queued, and a job's container whose task someone else
ended (a Cell API cancel) is stopped. The mapping's filter lets only job tasks in; a failure
raises, so the stream delivers the batch again."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.hooks import JobHooks

logger = Logger()
hooks = JobHooks.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    done = hooks.react(event.get("Records") or [])
    logger.info("job task changes handled", extra=done)
    return done
