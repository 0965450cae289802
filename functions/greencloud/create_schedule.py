"""POST /v1/scheduled: {functionId, cron, timezone, description?} → 201 {id}."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_schedules
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_schedules_doc as schedule_doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.post("/v1/scheduled", **apidoc.route(
    doc.API, operation_id="createSchedule", summary="Run a function on a cron schedule",
    description="cron: 5-field Unix cron (minute hour day-of-month month day-of-week; not "
                "both days restricted); timezone: IANA. Each run is a task of the function "
                "with the schedule's payload (PUT .../payload), carrying scheduleId.",
    body=apidoc.json_body(schedule_doc.BODY),
    answers={201: doc.created("schedule")}, errors=(400, 404, 413)))
def create_schedule():
    caller = api.caller(app)
    fields = greencloud_schedules.parse_new_schedule(api.json_object(app, limit=4 * 1024))
    schedule = schedules.create(caller, fields)
    return api.json_response(201, {"id": schedule.id})


handler = api.entrypoint(app)
