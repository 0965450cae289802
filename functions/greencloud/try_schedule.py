"""POST /v1/scheduled/{id}/try: run the schedule now → 201 {id} (the task's)."""

from taskfn import api, apidoc, aws
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()
aws.client("sqs")  # every try sends a task


@app.post("/v1/scheduled/<schedule_id>/try", **apidoc.route(
    doc.API, operation_id="trySchedule", summary="Run a schedule once, now",
    answers={201: doc.created("task")}, errors=(400, 404, 409)))
def try_schedule(schedule_id: str):
    task = schedules.try_now(api.caller(app), schedule_id)
    return api.json_response(201, {"id": task.task_guid})


handler = api.entrypoint(app)
