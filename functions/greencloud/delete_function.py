"""DELETE /v1/function/{id}: 204; its finished tasks and their results stay readable, and the
tasks that waited for it to be resumed are sent on."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.delete("/v1/function/<function_id>", **apidoc.route(
    doc.API, operation_id="deleteFunction", summary="Delete a function",
    description="Its finished tasks and their results stay readable; tasks that waited for "
                "it to be resumed run.",
    answers={204: apidoc.Answer("deleted")}, errors=(400, 404)))
def delete_function(function_id: str):
    functions.delete(api.caller(app), function_id)
    return api.empty(204)


handler = api.entrypoint(app)
