"""PUT /v1/scheduled/{id}/payload: this request's body, query and content type become every
run's input → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.put("/v1/scheduled/<schedule_id>/payload", **apidoc.route(
    doc.API, operation_id="setSchedulePayload", summary="Set a schedule's run input",
    description="Any body (at most 64 KiB): each run's event.body is it as POST /v1/task "
                "would parse it, event.query this request's query.",
    body={"required": False, "content": {"*/*": {"schema": {}}}},
    answers={204: apidoc.Answer("set")}, errors=(400, 404, 413)))
def set_schedule_payload(schedule_id: str):
    schedules.set_payload(api.caller(app), schedule_id, api.raw_body(app), api.query(app),
                          app.current_event.headers.get("content-type"))
    return api.empty()


handler = api.entrypoint(app)
