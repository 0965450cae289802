"""PATCH /v1/endpoint/{endpointId}: the fields given change → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_endpoints
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.patch("/v1/endpoint/<endpoint_id>", **apidoc.route(
    doc.API, operation_id="updateEndpoint", summary="Change a public endpoint",
    description="The create's fields and bounds; those given change (tag, origin and ip "
                "replace the lists, [] empties them; timeLimit null removes the window).",
    body=apidoc.json_body(endpoint_doc.BODY),
    answers={204: apidoc.Answer("changed")}, errors=(400, 404, 413)))
def update_endpoint(endpoint_id: str):
    caller = api.caller(app)
    with endpoints.owner_first(caller, endpoint_id):
        changes = greencloud_endpoints.parse_endpoint(api.json_object(app, limit=16 * 1024),
                                                      patch=True)
        endpoints.update(caller, endpoint_id, changes)
    return api.empty()


handler = api.entrypoint(app)
