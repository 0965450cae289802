"""POST /v1/tasks/resolving (BBS ResolvingTask): {task_guid} → {error}; Completed → Resolving."""

from taskfn import api
from taskfn.adapters import bbs
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/resolving")
def resolving_task():
    caller = api.caller(app)
    cells.resolving(caller, bbs.parse(app, bbs.TaskGuidRequest).task_guid)
    return bbs.answer()


handler = api.entrypoint(app)
