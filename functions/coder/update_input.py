"""PATCH /api/v2/tasks/{user}/{task}/input: replace the initial prompt, only while paused."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.patch("/api/v2/tasks/<user>/<task>/input", **apidoc.route(
    apidoc.CODER, operation_id="coderUpdateTaskInput", summary="Replace the initial prompt",
    body=apidoc.json_body(apidoc.ref("CoderInput")),
    answers={204: apidoc.Answer("replaced")}, errors=(400, 404, 409)))
def update_input(user: str, task: str):
    conversation = tasks.task(coder.caller(app), coder.segment(user), coder.segment(task),
                              consistent=True)
    tasks.update_input(conversation, coder.string_field(coder.body(app), "input"))
    return api.empty(204)


handler = api.entrypoint(app)
