"""GET /v1/task/{taskId}/result: 404 until finished, then the function's response replayed."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()


@app.get("/v1/task/<task_id>/result")
def get_task_result(task_id: str):
    return greencloud.replay(tasks.result(api.caller(app), task_id))


handler = api.entrypoint(app)
