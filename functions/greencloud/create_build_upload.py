"""POST /v1/build/{functionId}/upload (taskfn's extension): {size} → 201 {uploadId, url,
method, headers, expiresIn}: a presigned PUT for a zip too large to send in a request. PUT the
zip there with exactly those headers, then POST /v1/build/{functionId}?upload=<uploadId>."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.builds import BuildService

app = api.resolver(greencloud.error_response)
builds = BuildService.from_env()


@app.post("/v1/build/<function_id>/upload", **apidoc.route(
    doc.API, operation_id="createBuildUpload", summary="A URL to upload a large zip to",
    description="taskfn's extension for archives over 4 MiB (up to 50 MiB): the URL takes one "
                "PUT of exactly `size` bytes with the headers given, for `expiresIn` seconds.",
    body=apidoc.json_body(apidoc.ref("NewUpload")),
    answers={201: apidoc.Answer("where to PUT the zip", apidoc.ref("Upload"))},
    errors=(400, 404, 413)))
def create_build_upload(function_id: str):
    function = builds.function(api.caller(app), function_id)
    body = api.json_object(app, limit=1024)
    upload = builds.new_upload(function, body.get("size"))
    return api.json_response(201, {
        "uploadId": upload.id, "url": upload.url, "method": "PUT", "headers": upload.headers,
        "expiresIn": upload.expires_s,
    })


handler = api.entrypoint(app)
