"""GET /api/v2/taskfn/presets: the caller's presets, oldest first (taskfn's extension)."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.get("/api/v2/taskfn/presets", **apidoc.route(
    apidoc.CODER, operation_id="coderListPresets", summary="The caller's presets (taskfn's)",
    answers={200: apidoc.Answer("the presets", {"type": "array",
                                                "items": apidoc.ref("CoderPreset")})}))
def list_presets():
    return api.json_response(200, [coder.preset_view(p)
                                   for p in tasks.presets(coder.caller(app))])


handler = api.entrypoint(app)
