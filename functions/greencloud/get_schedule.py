"""GET /v1/scheduled/{id}: one of the caller's schedules, with its payload."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_schedules
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_schedules_doc as schedule_doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.get("/v1/scheduled/<schedule_id>", **apidoc.route(
    doc.API, operation_id="getSchedule", summary="One of the caller's schedules",
    answers={200: apidoc.Answer("the schedule", schedule_doc.SCHEDULE)}, errors=(404,)))
def get_schedule(schedule_id: str):
    schedule = schedules.get(api.caller(app), schedule_id)
    return api.json_response(200, greencloud_schedules.schedule_view(schedule))


handler = api.entrypoint(app)
