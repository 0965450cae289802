"""GET /v1/build/{id}: status, timeline and log of a build."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.get("/v1/build/<build_id>", **apidoc.route(
    doc.API, operation_id="getBuild", summary="A build's status, timeline and log",
    answers={200: apidoc.Answer("the build", apidoc.ref("Build"))}, errors=(400, 404)))
def get_build(build_id: str):
    return api.json_response(200, greencloud.build_view(builds.get(api.caller(app), build_id)))


handler = api.entrypoint(app)
