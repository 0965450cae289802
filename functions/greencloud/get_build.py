"""GET /v1/build/{id}: status, timeline and log of a build."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.get("/v1/build/<build_id>")
def get_build(build_id: str):
    return api.json_response(200, greencloud.build_view(builds.get(api.caller(app), build_id)))


handler = api.entrypoint(app)
