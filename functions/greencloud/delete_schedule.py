"""DELETE /v1/scheduled/{id} → 204 (its Scheduler schedule with it)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.delete("/v1/scheduled/<schedule_id>", **apidoc.route(
    doc.API, operation_id="deleteSchedule", summary="Delete a schedule",
    answers={204: apidoc.Answer("deleted")}, errors=(404,)))
def delete_schedule(schedule_id: str):
    schedules.delete(api.caller(app), schedule_id)
    return api.empty()


handler = api.entrypoint(app)
