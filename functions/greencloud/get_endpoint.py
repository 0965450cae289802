"""GET /v1/endpoint/{endpointId}: one of the caller's public endpoints."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_endpoints
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.get("/v1/endpoint/<endpoint_id>", **apidoc.route(
    doc.API, operation_id="getEndpoint", summary="One of the caller's public endpoints",
    answers={200: apidoc.Answer("the endpoint", endpoint_doc.ENDPOINT)}, errors=(404,)))
def get_endpoint(endpoint_id: str):
    detail = endpoints.detail(api.caller(app), endpoint_id)
    return api.json_response(200, greencloud_endpoints.endpoint_view(detail))


handler = api.entrypoint(app)
