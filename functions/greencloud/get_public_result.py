"""GET /gc/{taskId}/result, no token: the result of a task a public call made, for a while
after it finished; with the owner's token (checked here as the authorizer checks it: the route
has none), any task's result of theirs, as GET /v1/task/{id}/result."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.adapters import greencloud_endpoints_doc as endpoint_doc
from taskfn.services.endpoints import PublicService

app = api.resolver(greencloud.error_response)
public = PublicService.from_env()


@app.get("/gc/<task_id>/result", **apidoc.route(
    doc.API, operation_id="getPublicResult", summary="A public call's result (no token)",
    description="The function's status, headers and body, replayed, for PUBLIC_RESULT_SECONDS "
                "(300 by default) after the task finished; then 404 unless the owner's token "
                "is given. 404 until the task has finished.",
    answers=endpoint_doc.RESULT, errors=(404,), public=True))
def get_public_result(task_id: str):
    authorization = app.current_event.headers.get("authorization")
    # Public, whoever asks: a browser sent here must not be redirected, given cookies or run
    # a script on the platform's domain (the owner has /v1/task/{id}/result for the rest).
    return greencloud.replay(public.result(task_id, authorization), public=True)


handler = api.entrypoint(app)
