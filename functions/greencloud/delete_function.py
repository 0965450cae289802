"""DELETE /v1/function/{id}: 204; its finished tasks and their results stay readable."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.delete("/v1/function/<function_id>")
def delete_function(function_id: str):
    functions.delete(api.caller(app), function_id)
    return api.empty(204)


handler = api.entrypoint(app)
