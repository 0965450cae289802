"""POST /v1/trigger: {functionId, nextId, status, tag?, includeResult, description?} → 201."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_triggers
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_triggers_doc as trigger_doc
from taskfn.services.triggers import TriggerService

app = api.resolver(greencloud.error_response)
triggers = TriggerService.from_env()


@app.post("/v1/trigger", **apidoc.route(
    doc.API, operation_id="createTrigger", summary="Chain a function after another",
    description="When a task of functionId finishes with the HTTP status `status`, a task of "
                "nextId runs, with the first one's response body as its body when "
                "includeResult is true (else none). Both must be your functions (404).",
    body=apidoc.json_body(trigger_doc.BODY),
    answers={201: doc.created("trigger")}, errors=(400, 404, 413)))
def create_trigger():
    caller = api.caller(app)
    fields = greencloud_triggers.parse_new_trigger(api.json_object(app, limit=4 * 1024))
    trigger = triggers.create(caller, fields)
    return api.json_response(201, {"id": trigger.id})


handler = api.entrypoint(app)
