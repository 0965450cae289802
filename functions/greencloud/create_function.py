"""POST /v1/function: register a function (with `source`, its code too)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.post("/v1/function", **apidoc.route(
    doc.API, operation_id="createFunction", summary="Register a function",
    description="With `source` (a main.py), its first build too.",
    body=apidoc.json_body(apidoc.ref("NewFunction")),
    answers={201: doc.created("function")}, errors=(400, 413)))
def create_function():
    caller = api.caller(app)
    new = greencloud.parse_new_function(api.json_object(app, limit=512 * 1024))
    record = functions.create(caller, new)
    return api.json_response(201, {"id": record.id})


handler = api.entrypoint(app)
