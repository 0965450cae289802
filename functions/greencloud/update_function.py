"""PATCH /v1/function/{id}: {name?, description?, tag?} → 204; the fields given change."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.patch("/v1/function/<function_id>", **apidoc.route(
    doc.API, operation_id="updateFunction", summary="Change a function's name, description "
    "or tags",
    description="With create's bounds. `tag` replaces the tags (each one of the caller's, at "
                "most 20; [] removes them). A body that changes nothing is a 400.",
    body=apidoc.json_body(apidoc.ref("FunctionPatch")),
    answers={204: apidoc.Answer("changed")}, errors=(400, 404, 409, 413)))
def update_function(function_id: str):
    caller = api.caller(app)
    with functions.owner_first(caller, function_id):
        patch = greencloud.parse_function_patch(api.json_object(app, limit=16 * 1024))
        functions.update(caller, function_id, patch)
    return api.empty(204)


handler = api.entrypoint(app)
