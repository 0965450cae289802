"""POST /api/experimental/tasks/{user}/{task}/resume (and under /api/v2): a paused task
released; 409 when it is not paused."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()
DOC = {"answers": {202: apidoc.Answer("resumed", apidoc.ref("CoderWorkspaceBuild"))},
       "errors": (404, 409), "summary": "Resume an agent task"}


@app.post("/api/v2/tasks/<user>/<task>/resume",
          **apidoc.route(apidoc.CODER, operation_id="coderResumeTask", **DOC))
@app.post("/api/experimental/tasks/<user>/<task>/resume",
          **apidoc.route(apidoc.CODER, operation_id="coderResumeTaskExperimental", **DOC))
def resume_task(user: str, task: str):
    released = tasks.resume(coder.caller(app), coder.segment(user), coder.segment(task))
    return api.json_response(202, coder.build_view(released, "start"))


handler = api.entrypoint(app)
