"""DELETE /v1/trigger/{id} → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.triggers import TriggerService

app = api.resolver(greencloud.error_response)
triggers = TriggerService.from_env()


@app.delete("/v1/trigger/<trigger_id>", **apidoc.route(
    doc.API, operation_id="deleteTrigger", summary="Delete a trigger",
    answers={204: apidoc.Answer("deleted")}, errors=(404,)))
def delete_trigger(trigger_id: str):
    triggers.delete(api.caller(app), trigger_id)
    return api.empty()


handler = api.entrypoint(app)
