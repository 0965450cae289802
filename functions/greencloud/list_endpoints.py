"""GET /v1/endpoint/list: the caller's public endpoints, or one function's, newest first, in
numbered pages with their total."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud, greencloud_endpoints
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import EndpointService

app = api.resolver(greencloud.error_response)
endpoints = EndpointService.from_env()


@app.get("/v1/endpoint/list", **apidoc.route(
    doc.API, operation_id="listEndpoints", summary="The caller's public endpoints",
    parameters=doc.NUMBERED_PAGE,
    answers={200: apidoc.Answer("one page, newest first", endpoint_doc.PAGE)},
    errors=(400, 404)))
def list_endpoints():
    caller = api.caller(app)
    request = greencloud.parse_page_query(api.query(app))
    page = endpoints.page(caller, page=request.page, limit=request.limit,
                          function_id=request.function_id)
    return api.json_response(200, greencloud_endpoints.endpoint_page_view(
        page, limit=request.limit))


handler = api.entrypoint(app)
