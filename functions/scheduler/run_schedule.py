"""RunScheduleFunction: EventBridge Scheduler's target. Its input is the schedule's
{scheduleId, owner, scheduledTime}; one task per (schedule, fire time), however often
Scheduler delivers it (services/schedules.py)."""

from typing import Any

from taskfn import aws
from taskfn.services.schedules import ScheduleService

schedules = ScheduleService.from_env()
aws.client("sqs")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = schedules.run(str(event.get("scheduleId", "")), str(event.get("owner", "")),
                         str(event.get("scheduledTime", "")))
    return {"taskId": task.task_guid if task else None}
