"""GET /v1/task/{taskId}/logs: the function's captured stdout and stderr (taskfn extension)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()


@app.get("/v1/task/<task_id>/logs", **apidoc.route(
    doc.API, operation_id="getTaskLogs", summary="The function's stdout and stderr",
    description="taskfn's extension. *Dropped count what was cut beyond the kept size.",
    answers={200: apidoc.Answer("the logs", apidoc.ref("TaskLogs"))}, errors=(400, 404)))
def get_task_logs(task_id: str):
    logs = tasks.logs(api.caller(app), task_id)
    return api.json_response(
        200,
        {
            "stdout": logs.stdout,
            "stderr": logs.stderr,
            "stdoutDropped": logs.stdout_dropped,
            "stderrDropped": logs.stderr_dropped,
        },
    )


handler = api.entrypoint(app)
