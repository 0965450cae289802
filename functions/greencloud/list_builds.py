"""GET /v1/build/list: the caller's builds, or one function's, newest first, in numbered
pages with their total (GreenCloud's paged envelope)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.get("/v1/build/list", **apidoc.route(
    doc.API, operation_id="listBuilds", summary="The caller's builds",
    parameters=doc.NUMBERED_PAGE,
    answers={200: apidoc.Answer("one page, newest first", apidoc.ref("BuildPage"))},
    errors=(400, 404)))
def list_builds():
    caller = api.caller(app)
    request = greencloud.parse_page_query(api.query(app))
    page = builds.list(caller, page=request.page, limit=request.limit,
                       function_id=request.function_id)
    return api.json_response(200, greencloud.build_page_view(page, limit=request.limit))


handler = api.entrypoint(app)
