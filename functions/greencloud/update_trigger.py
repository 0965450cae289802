"""PATCH /v1/trigger/{id}: {tag?, status?, includeResult?, description?} → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_triggers
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_triggers_doc as trigger_doc
from taskfn.services.triggers import TriggerService

app = api.resolver(greencloud.error_response)
triggers = TriggerService.from_env()


@app.patch("/v1/trigger/<trigger_id>", **apidoc.route(
    doc.API, operation_id="updateTrigger", summary="Change a trigger",
    body=apidoc.json_body(trigger_doc.PATCH),
    answers={204: apidoc.Answer("changed")}, errors=(400, 404, 413)))
def update_trigger(trigger_id: str):
    caller = api.caller(app)
    triggers.get(caller, trigger_id)  # another owner's: 404 before any 400
    changes = greencloud_triggers.parse_trigger_patch(api.json_object(app, limit=4 * 1024))
    triggers.update(caller, trigger_id, changes)
    return api.empty()


handler = api.entrypoint(app)
