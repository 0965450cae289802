"""DELETE /api/v2/tasks/{user}/{task}: 202, and later reads are 404 (a running turn stops)."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.delete("/api/v2/tasks/<user>/<task>", **apidoc.route(
    apidoc.CODER, operation_id="coderDeleteTask", summary="Delete an agent task",
    answers={202: apidoc.Answer("deleted")}, errors=(404,)))
def delete_task(user: str, task: str):
    tasks.delete(coder.caller(app), coder.segment(user), coder.segment(task))
    return api.empty(202)


handler = api.entrypoint(app)
