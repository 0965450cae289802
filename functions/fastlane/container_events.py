"""EventBridge → a job's execution ended or started: ECS's "ECS Task State Change" events of
the jobs' cluster (in the local stack, the same events from its process back-end). STOPPED
records the exit code, the output and the outcome with one conditional write, or retries the
task after a non-zero exit (taskfn.services.containers). A failure raises, so EventBridge
delivers the event again; a repeat finds its write's condition failed and does nothing."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.services.containers import ContainerRuns

logger = Logger()
runs = ContainerRuns.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    outcome = runs.on_event(event)
    detail = event.get("detail") or {}
    logger.info("container event", extra={"taskGuid": detail.get("startedBy"),
                                          "lastStatus": detail.get("lastStatus"),
                                          "outcome": outcome})
    return {"outcome": outcome}
