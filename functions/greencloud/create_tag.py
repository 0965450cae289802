"""POST /v1/tag: {name, color?} → 201 {id}."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tags import TagService

app = api.resolver(greencloud.error_response)
tags = TagService.from_env()


@app.post("/v1/tag", **apidoc.route(
    doc.API, operation_id="createTag", summary="Create a tag",
    description="name: printable ASCII, 1-64 characters, not only spaces (two tags may share "
                "one); color: #rrggbb, kept in lower case, #808080 when left out. At most 500 "
                "tags per account (409 beyond).",
    body=apidoc.json_body(apidoc.ref("NewTag")),
    answers={201: doc.created("tag")}, errors=(400, 409, 413)))
def create_tag():
    caller = api.caller(app)
    tag = tags.create(caller, greencloud.parse_new_tag(api.json_object(app, limit=4 * 1024)))
    return api.json_response(201, {"id": tag.id})


handler = api.entrypoint(app)
