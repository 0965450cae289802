"""POST /api/v2/tasks/{user}: a new agent task (a conversation), its first turn queued."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.post("/api/v2/tasks/<user>", **apidoc.route(
    apidoc.CODER, operation_id="coderCreateTask", summary="Create an agent task",
    body=apidoc.json_body(apidoc.ref("CoderCreateTaskRequest")),
    answers={201: apidoc.Answer("the task", apidoc.ref("CoderTask"))},
    errors=(400, 404, 409)))
def create_task(user: str):
    caller = coder.caller(app)
    tasks.check_user(caller, coder.segment(user))  # 404 for another user, before the body
    body = coder.body(app)
    task = tasks.create(
        caller, coder.segment(user),
        template_version_id=coder.uuid_field(body, "template_version_id"),
        preset_id=coder.uuid_field(body, "template_version_preset_id"),
        prompt=coder.string_field(body, "input"), name=coder.string_field(body, "name"),
        display_name=coder.string_field(body, "display_name"))
    return api.json_response(201, coder.task_view(task, tasks.function_of(task)))


handler = api.entrypoint(app)
