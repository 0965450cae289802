"""POST /v1/build/{functionId}: upload a zip (application/octet-stream) → 201 {id}."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.post("/v1/build/<function_id>")
def create_build(function_id: str):
    record = builds.create(api.caller(app), function_id, api.raw_body(app))
    return api.json_response(201, {"id": record.id})


handler = api.entrypoint(app)
