"""POST /v1/tasks/desire.r2 (BBS DesireTask): {task_guid, domain, task_definition} → {error}.
Without placement_tags the built-in executor runs task_definition.function_id."""

from taskfn import api, aws
from taskfn.adapters import bbs
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()
aws.client("sqs")  # most desires send: build the client during init, not on a request


@app.post("/v1/tasks/desire.r2")
def desire_task():
    caller = api.caller(app)
    cells.desire(caller, bbs.parse_desire(app))
    return bbs.answer()


handler = api.entrypoint(app)
