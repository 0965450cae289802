"""DELETE /v1/endpoint/{endpointId} → 204 (the tasks its calls made stay)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.delete("/v1/endpoint/<endpoint_id>", **apidoc.route(
    doc.API, operation_id="deleteEndpoint", summary="Delete a public endpoint",
    answers={204: apidoc.Answer("deleted")}, errors=(404,)))
def delete_endpoint(endpoint_id: str):
    endpoints.delete(api.caller(app), endpoint_id)
    return api.empty()


handler = api.entrypoint(app)
