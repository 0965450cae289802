"""POST /v1/build/{functionId}: a zip (application/octet-stream, at most 4 MiB) → 201 {id}; or,
with `?upload=<uploadId>` and no body, the zip uploaded through POST /v1/build/{id}/upload."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.post("/v1/build/<function_id>", **apidoc.route(
    doc.API, operation_id="createBuild", summary="Build the function from a zip",
    description="A zip with main.py defining handler(event, context) at its root, in the "
                "body (at most 4 MiB: it travels base64 in Lambda's 6 MB), or, with `upload`, "
                "one sent to the URL of POST /v1/build/{id}/upload (taskfn's extension, up to "
                "50 MiB). The build is checked and deployed within the request; its status "
                "says how it went.",
    body=apidoc.json_body({"type": "string", "format": "binary"}, required=False,
                          media="application/octet-stream"),
    parameters=(apidoc.query("upload", {"type": "string"},
                             "build from this upload instead of the body"),),
    answers={201: doc.created("build")}, errors=(400, 404, 413)))
def create_build(function_id: str):
    caller = api.caller(app)
    upload = api.query(app).get("upload")
    if upload is not None:
        record = builds.create_from_upload(caller, function_id, upload)
    else:
        record = builds.create(caller, function_id, api.raw_body(app))
    return api.json_response(201, {"id": record.id})


handler = api.entrypoint(app)
