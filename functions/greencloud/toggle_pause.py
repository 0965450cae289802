"""POST /v1/function/{id}/togglePause → 204: pause a function (it accepts no new tasks, and
its queued ones wait) or resume it (they run)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.post("/v1/function/<function_id>/togglePause", **apidoc.route(
    doc.API, operation_id="togglePauseFunction", summary="Pause or resume a function",
    description="Paused, it refuses new tasks (409) and its queued tasks wait; resumed, they "
                "run. GET /v1/function/{id} says which (`paused`).",
    answers={204: apidoc.Answer("paused, or resumed")}, errors=(400, 404, 409)))
def toggle_pause(function_id: str):
    functions.toggle_pause(api.caller(app), function_id)
    return api.empty(204)


handler = api.entrypoint(app)
