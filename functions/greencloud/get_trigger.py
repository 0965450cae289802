"""GET /v1/trigger/{id}: one of the caller's triggers."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_triggers
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_triggers_doc as trigger_doc
from taskfn.services.triggers import TriggerService

app = api.resolver(greencloud.error_response)
triggers = TriggerService.from_env()


@app.get("/v1/trigger/<trigger_id>", **apidoc.route(
    doc.API, operation_id="getTrigger", summary="One of the caller's triggers",
    description="stoppedChain (taskfn): the last task this trigger did not follow because "
                "the chain reached TRIGGER_MAX_DEPTH, with the reason; null while none.",
    answers={200: apidoc.Answer("the trigger", trigger_doc.TRIGGER)}, errors=(404,)))
def get_trigger(trigger_id: str):
    detail = triggers.detail(api.caller(app), trigger_id)
    return api.json_response(200, greencloud_triggers.trigger_view(detail.trigger, detail.tags))


handler = api.entrypoint(app)
