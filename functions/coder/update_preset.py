"""PUT /api/v2/taskfn/presets/{preset}: a preset replaced (taskfn's extension); tasks
created from it keep what they took."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.put("/api/v2/taskfn/presets/<preset>", **apidoc.route(
    apidoc.CODER, operation_id="coderUpdatePreset", summary="Replace a preset (taskfn's)",
    body=apidoc.json_body(apidoc.ref("CoderPreset")),
    answers={200: apidoc.Answer("the preset", apidoc.ref("CoderPreset"))},
    errors=(400, 404)))
def update_preset(preset: str):
    caller = coder.caller(app)
    found = tasks.own_preset(caller, coder.segment(preset))
    updated = tasks.update_preset(found, coder.parse_preset(coder.body(app)))
    return api.json_response(200, coder.preset_view(updated))


handler = api.entrypoint(app)
