"""PATCH /v1/tag/{id}: {name?, color?} → 204."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tags import TagService

app = api.resolver(greencloud.error_response)
tags = TagService.from_env()


@app.patch("/v1/tag/<tag_id>", **apidoc.route(
    doc.API, operation_id="updateTag", summary="Rename or recolor a tag",
    description="The bounds of POST /v1/tag; a body that changes nothing is a 400.",
    body=apidoc.json_body(apidoc.ref("TagPatch")),
    answers={204: apidoc.Answer("changed")}, errors=(400, 404, 413)))
def update_tag(tag_id: str):
    caller = api.caller(app)
    with tags.owner_first(caller, tag_id):
        patch = greencloud.parse_tag_patch(api.json_object(app, limit=4 * 1024))
        tags.update(caller, tag_id, **patch)
    return api.empty(204)


handler = api.entrypoint(app)
