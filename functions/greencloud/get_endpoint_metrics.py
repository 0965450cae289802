"""GET /v1/endpoint/{endpointId}/metrics: the endpoint's task counters (one read)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.get("/v1/endpoint/<endpoint_id>/metrics", **apidoc.route(
    doc.API, operation_id="getEndpointMetrics", summary="A public endpoint's task counters",
    description="Counted as its calls make tasks and they finish, never by counting records.",
    answers={200: apidoc.Answer("the counters", endpoint_doc.METRICS)}, errors=(404,)))
def get_endpoint_metrics(endpoint_id: str):
    return api.json_response(200, endpoints.counters(api.caller(app), endpoint_id))


handler = api.entrypoint(app)
