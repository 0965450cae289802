"""DynamoDB stream → task events: kept for readers of /v1/events/tasks.r1 and published on the
EventBridge bus. A failure raises, so the stream delivers the batch again (at least once)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskfn.adapters.bbs_view import task_view
from taskfn.services.events import TaskEvents

logger = Logger()
events = TaskEvents.from_env()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records") or []
    on_bus = events.bus_entries
    published = events.publish(records, task_view)
    on_bus = events.bus_entries - on_bus
    logger.info("task events", extra={"records": len(records), "events": published,
                                      "on_bus": on_bus})
    return {"records": len(records), "events": published, "on_bus": on_bus}
