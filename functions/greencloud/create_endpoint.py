"""POST /v1/endpoint/{functionId}: a public endpoint on one of the caller's functions → 201."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_endpoints
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.post("/v1/endpoint/<function_id>", **apidoc.route(
    doc.API, operation_id="createEndpoint", summary="Make a function callable without a token",
    description="Each call of POST /gc/{id} runs a task of the function. description: "
                "printable ASCII, at most 256; tag: your tag ids; dailyLimit: calls a UTC day, "
                "-1 (the default) none; origin: https origins allowed (none: any); ip: IPv4 "
                "addresses allowed (none: any); timeLimit: {from, to, timezone} (none: any "
                "time).",
    body=apidoc.json_body(endpoint_doc.BODY),
    answers={201: doc.created("endpoint")}, errors=(400, 404, 413)))
def create_endpoint(function_id: str):
    caller = api.caller(app)
    with endpoints.owner_function_first(caller, function_id):
        fields = greencloud_endpoints.parse_endpoint(api.json_object(app, limit=16 * 1024))
    endpoint = endpoints.create(caller, function_id, fields)
    return api.json_response(201, {"id": endpoint.id})


handler = api.entrypoint(app)
