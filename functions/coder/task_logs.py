"""GET /api/v2/tasks/{user}/{task}/logs: the conversation's inputs and outputs, live while
active, the snapshot while pending, initializing or paused; 409 in error."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.get("/api/v2/tasks/<user>/<task>/logs", **apidoc.route(
    apidoc.CODER, operation_id="coderTaskLogs", summary="An agent task's log",
    answers={200: apidoc.Answer("the log", apidoc.ref("CoderLogs"))}, errors=(404, 409)))
def task_logs(user: str, task: str):
    logs = tasks.logs(coder.caller(app), coder.segment(user), coder.segment(task))
    return api.json_response(200, coder.logs_view(logs.entries, snapshot=logs.snapshot,
                                                  snapshot_at=logs.snapshot_at))


handler = api.entrypoint(app)
