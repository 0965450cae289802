"""GET /v1/tag/list: the caller's tags, [{id, name, color}], in the order they were created."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tags import TagService

app = api.resolver(greencloud.error_response)
tags = TagService.from_env()


@app.get("/v1/tag/list", **apidoc.route(
    doc.API, operation_id="listTags", summary="The caller's tags",
    description="All of them (at most 500), oldest first: one Query.",
    answers={200: apidoc.Answer("the tags", {"type": "array", "items": apidoc.ref("Tag")})}))
def list_tags():
    return api.json_response(200, [greencloud.tag_view(tag) for tag in
                                   tags.list(api.caller(app))])


handler = api.entrypoint(app)
