"""RunScheduleFunction: EventBridge Scheduler's target. Its input is the schedule's
{scheduleId, owner, scheduledTime} (and kind "job" for a fastlane job's schedule); one task per
(schedule, fire time), however often Scheduler delivers it (services/schedules.py,
services/jobs.py)."""

from typing import Any

from taskfn import aws
from taskfn.services.schedules import ScheduleService

schedules = ScheduleService.from_env()
aws.client("sqs")
_jobs = None


def jobs() -> Any:
    """fastlane's jobs, built on first use: most fires are functions' schedules."""
    global _jobs
    if _jobs is None:
        from taskfn.services.jobs import JobService

        _jobs = JobService.from_env()
    return _jobs


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    schedule_id, owner = str(event.get("scheduleId", "")), str(event.get("owner", ""))
    fire_time = str(event.get("scheduledTime", ""))
    if event.get("kind") == "job":
        return {"taskId": jobs().run_scheduled(schedule_id, owner, fire_time)}
    task = schedules.run(schedule_id, owner, fire_time)
    return {"taskId": task.task_guid if task else None}
