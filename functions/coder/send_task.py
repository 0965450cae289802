"""POST /api/v2/tasks/{user}/{task}/send: the conversation's next turn, with this input."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.post("/api/v2/tasks/<user>/<task>/send", **apidoc.route(
    apidoc.CODER, operation_id="coderSendTask", summary="Send input: the next turn",
    body=apidoc.json_body(apidoc.ref("CoderInput")),
    answers={204: apidoc.Answer("sent")}, errors=(400, 404, 409)))
def send_task(user: str, task: str):
    conversation = tasks.task(coder.caller(app), coder.segment(user), coder.segment(task),
                              consistent=True)
    tasks.send(conversation, coder.string_field(coder.body(app), "input"))
    return api.empty(204)


handler = api.entrypoint(app)
