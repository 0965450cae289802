"""GET /v1/scheduled/list: the caller's schedules, a numbered page."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_schedules
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_schedules_doc as schedule_doc
from taskfn.services.schedules import ScheduleService

app = api.resolver(greencloud.error_response)
schedules = ScheduleService.from_env()


@app.get("/v1/scheduled/list", **apidoc.route(
    doc.API, operation_id="listSchedules", summary="The caller's schedules, newest first",
    parameters=(*doc.NUMBERED_PAGE, *schedule_doc.LIST_QUERY),
    answers={200: apidoc.Answer("a page", schedule_doc.PAGE)}, errors=(400, 404)))
def list_schedules():
    caller = api.caller(app)  # a missing token is 401 before any 400
    params = greencloud_schedules.parse_schedule_list(api.query(app))
    page = schedules.list(caller, **params)
    return api.json_response(200, greencloud.page_view(
        [greencloud_schedules.schedule_list_item(s) for s in page.schedules],
        total=page.total, limit=params["limit"]))


handler = api.entrypoint(app)
