"""GET /v1/trigger/list: the caller's triggers, a numbered page (limit 3-20)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_triggers
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_triggers_doc as trigger_doc
from taskfn.apidoc import query
from taskfn.services.triggers import TriggerService

app = api.resolver(greencloud.error_response)
triggers = TriggerService.from_env()


@app.get("/v1/trigger/list", **apidoc.route(
    doc.API, operation_id="listTriggers", summary="The caller's triggers, oldest first",
    parameters=(query("page", {"type": "integer", "minimum": 1}, "default 1"),
                query("limit", {"type": "integer", "minimum": 3, "maximum": 20},
                      "default 10"),
                query("functionId", doc.ID, "only triggers on this function's tasks")),
    answers={200: apidoc.Answer("a page", trigger_doc.PAGE)}, errors=(400, 404)))
def list_triggers():
    caller = api.caller(app)  # a missing token is 401 before any 400
    params = greencloud_triggers.parse_trigger_list(api.query(app))
    page = triggers.list(caller, **params)
    return api.json_response(200, greencloud.page_view(
        [greencloud_triggers.trigger_list_item(t, page.tags) for t in page.triggers],
        total=page.total, limit=params["limit"]))


handler = api.entrypoint(app)
