"""GET /v1/function/{id}: one of the caller's functions, with its tags and task counters."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.get("/v1/function/<function_id>", **apidoc.route(
    doc.API, operation_id="getFunction", summary="One of the caller's functions",
    description="With its tags as objects and its metrics (counted as its tasks are created "
                "and finish: one read).",
    answers={200: apidoc.Answer("the function", apidoc.ref("Function"))}, errors=(400, 404)))
def get_function(function_id: str):
    detail = functions.detail(api.caller(app), function_id)
    return api.json_response(200, greencloud.function_view(
        detail.function, tags=detail.tags, metrics=detail.metrics))


handler = api.entrypoint(app)
