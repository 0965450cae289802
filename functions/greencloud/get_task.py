"""GET /v1/task/{taskId}: times, progress, node, timeout and capabilities of a task."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()


@app.get("/v1/task/<task_id>")
def get_task(task_id: str):
    return api.json_response(200, greencloud.task_view(tasks.get(api.caller(app), task_id)))


handler = api.entrypoint(app)
