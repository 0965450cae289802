"""PATCH /v1/scheduled/{id}: {active?, cron?, timezone?, description?} → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_schedules
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_schedules_doc as schedule_doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.patch("/v1/scheduled/<schedule_id>", **apidoc.route(
    doc.API, operation_id="updateSchedule", summary="Change or pause a schedule",
    description="active false pauses it (its Scheduler schedule is DISABLED).",
    body=apidoc.json_body(schedule_doc.PATCH),
    answers={204: apidoc.Answer("changed")}, errors=(400, 404, 413)))
def update_schedule(schedule_id: str):
    caller = api.caller(app)
    schedules.get(caller, schedule_id)  # another owner's: 404 before any 400
    changes = greencloud_schedules.parse_schedule_patch(api.json_object(app, limit=4 * 1024))
    schedules.update(caller, schedule_id, changes)
    return api.empty()


handler = api.entrypoint(app)
