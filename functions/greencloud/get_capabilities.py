"""GET /v1/function/{id}/capabilities: {timeout, cpuCount, memSize, networkLatency,
privileged}."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.get("/v1/function/<function_id>/capabilities", **apidoc.route(
    doc.API, operation_id="getCapabilities", summary="A function's capabilities",
    answers={200: apidoc.Answer("its capabilities", apidoc.ref("Capabilities"))},
    errors=(400, 404)))
def get_capabilities(function_id: str):
    function = functions.get(api.caller(app), function_id)
    return api.json_response(200, function.capabilities.model_dump())


handler = api.entrypoint(app)
