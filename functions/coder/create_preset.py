"""POST /api/v2/taskfn/presets: a new preset (taskfn's extension): capabilities and the
input a task created with it gets when it gives none."""

from taskfn import api, apidoc
from taskfn.adapters import coder
from taskfn.services.agenttasks import AgentTaskService

app = coder.resolver()
tasks = AgentTaskService.from_env()


@app.post("/api/v2/taskfn/presets", **apidoc.route(
    apidoc.CODER, operation_id="coderCreatePreset", summary="Create a preset (taskfn's)",
    body=apidoc.json_body(apidoc.ref("CoderPreset")),
    answers={201: apidoc.Answer("the preset", apidoc.ref("CoderPreset"))}, errors=(400,)))
def create_preset():
    caller = coder.caller(app)
    preset = tasks.create_preset(caller, coder.parse_preset(coder.body(app)))
    return api.json_response(201, coder.preset_view(preset))


handler = api.entrypoint(app)
