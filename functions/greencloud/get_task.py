"""GET /v1/task/{taskId}: times, progress, node, timeout and capabilities of a task."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()


@app.get("/v1/task/<task_id>", **apidoc.route(
    doc.API, operation_id="getTask", summary="A task's times, progress, node and limits",
    answers={200: apidoc.Answer("the task", apidoc.ref("Task"))}, errors=(400, 404)))
def get_task(task_id: str):
    return api.json_response(200, greencloud.task_view(tasks.get(api.caller(app), task_id)))


handler = api.entrypoint(app)
