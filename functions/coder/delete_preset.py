"""DELETE /api/v2/taskfn/presets/{preset}: a preset removed (taskfn's extension)."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.delete("/api/v2/taskfn/presets/<preset>", **apidoc.route(
    apidoc.CODER, operation_id="coderDeletePreset", summary="Delete a preset (taskfn's)",
    answers={204: apidoc.Answer("deleted")}, errors=(404,)))
def delete_preset(preset: str):
    tasks.delete_preset(coder.caller(app), coder.segment(preset))
    return api.empty(204)


handler = api.entrypoint(app)
