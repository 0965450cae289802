"""POST /v1/function: register a function (with `source`, its code too)."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.functions import FunctionService

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()


@app.post("/v1/function")
def create_function():
    new = greencloud.parse_new_function(api.json_object(app, limit=512 * 1024))
    record = functions.create(api.caller(app), new)
    return api.json_response(201, {"id": record.id})


handler = api.entrypoint(app)
