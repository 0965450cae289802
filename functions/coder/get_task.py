"""GET /api/v2/tasks/{user}/{task}: an agent task by id (whoever `{user}` names) or name."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.get("/api/v2/tasks/<user>/<task>", **apidoc.route(
    apidoc.CODER, operation_id="coderGetTask", summary="An agent task",
    answers={200: apidoc.Answer("the task", apidoc.ref("CoderTask"))}, errors=(404,)))
def get_task(user: str, task: str):
    found = tasks.task(coder.caller(app), coder.segment(user), coder.segment(task))
    return api.json_response(200, coder.task_view(found, tasks.function_of(found)))


handler = api.entrypoint(app)
