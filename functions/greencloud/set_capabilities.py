"""POST /v1/function/{id}/capabilities → 204: the capabilities given are set, the others kept;
tasks created from now on run with them."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.post("/v1/function/<function_id>/capabilities", **apidoc.route(
    doc.API, operation_id="setCapabilities", summary="Set a function's capabilities",
    description="Any of timeout (10-120 s), cpuCount (0-4), memSize (0-2048 MB), "
                "networkLatency (0-60000 ms), privileged; the fields left out keep their "
                "values, a body with none is a 400. privileged true is a 400 unless the "
                "platform allows privileged work. Under isolation lambda the function's "
                "Lambda gets the new memory and timeout at once.",
    body=apidoc.json_body(apidoc.ref("Capabilities")),
    answers={204: apidoc.Answer("set")}, errors=(400, 404, 413)))
def set_capabilities(function_id: str):
    caller = api.caller(app)
    with functions.owner_first(caller, function_id):
        changes = greencloud.parse_capabilities(api.json_object(app, limit=4 * 1024))
        functions.set_capabilities(caller, function_id, changes)
    return api.empty(204)


handler = api.entrypoint(app)
