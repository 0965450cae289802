"""DELETE /v1/tag/{id} → 204: functions that carried it stop showing it."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tags import TagService

app = api.resolver(greencloud.error_response)
tags = TagService.from_env()


@app.delete("/v1/tag/<tag_id>", **apidoc.route(
    doc.API, operation_id="deleteTag", summary="Delete a tag",
    description="Functions that carry it stop showing it; GET /v1/function/list?tag= with "
                "it is a 404.",
    answers={204: apidoc.Answer("deleted")}, errors=(400, 404)))
def delete_tag(tag_id: str):
    tags.delete(api.caller(app), tag_id)
    return api.empty(204)


handler = api.entrypoint(app)
