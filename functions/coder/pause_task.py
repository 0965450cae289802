"""POST /api/experimental/tasks/{user}/{task}/pause (and under /api/v2): the finished turn
held; 409 while a turn is queued or running."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()
DOC = {"answers": {202: apidoc.Answer("paused", apidoc.ref("CoderWorkspaceBuild"))},
       "errors": (404, 409), "summary": "Pause an agent task"}


@app.post("/api/v2/tasks/<user>/<task>/pause",
          **apidoc.route(apidoc.CODER, operation_id="coderPauseTask", **DOC))
@app.post("/api/experimental/tasks/<user>/<task>/pause",
          **apidoc.route(apidoc.CODER, operation_id="coderPauseTaskExperimental", **DOC))
def pause_task(user: str, task: str):
    held = tasks.pause(coder.caller(app), coder.segment(user), coder.segment(task))
    return api.json_response(202, coder.build_view(held, "stop"))


handler = api.entrypoint(app)
