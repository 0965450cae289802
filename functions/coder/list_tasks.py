"""GET /api/v2/tasks?q=: the caller's agent tasks, newest first, filtered by `q`."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.get("/api/v2/tasks", **apidoc.route(
    apidoc.CODER, operation_id="coderListTasks", summary="The caller's agent tasks",
    parameters=(apidoc.query("q", {"type": "string"}, "owner:, organization:, status: "
                             "(values may be double-quoted); a bare word is the owner"),),
    answers={200: apidoc.Answer("the tasks", apidoc.ref("CoderTasks"))}, errors=(400,)))
def list_tasks():
    caller = coder.caller(app)
    found = tasks.list(caller, coder.parse_query(api.query(app).get("q") or ""))
    one_each = {t.function_id: t for t in found}  # one read per function, not per task
    functions = {fid: tasks.function_of(t) for fid, t in one_each.items()}
    views = [coder.task_view(t, functions[t.function_id]) for t in found]
    return api.json_response(200, {"tasks": views, "count": len(views)})


handler = api.entrypoint(app)
