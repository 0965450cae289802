"""GET /v1/task/{taskId}/result: 404 until finished, then the function's response replayed."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()


@app.get("/v1/task/<task_id>/result", **apidoc.route(
    doc.API, operation_id="getTaskResult", summary="The function's own HTTP response",
    description="404 until the task has finished; then the function's status, headers and "
                "body, replayed (any status, any content type).",
    answers={200: apidoc.Answer("the function's response (its own status)", {},
                                media="*/*"),
             303: apidoc.Answer("a response too large for a Lambda answer (over 4 MiB): its "
                                "body is at Location (a presigned S3 GET, 5 minutes), its "
                                "status in X-Taskfn-Status", headers={
                                    "Location": {"schema": {"type": "string"}},
                                    "X-Taskfn-Status": {"schema": {"type": "string"}}})},
    errors=(400, 404)))
def get_task_result(task_id: str):
    return greencloud.replay(tasks.result(api.caller(app), task_id))


handler = api.entrypoint(app)
