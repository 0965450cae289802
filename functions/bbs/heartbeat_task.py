"""POST /v1/tasks/heartbeat (taskfn's extension, cells only): {task_guid, cell_id} → {error};
refreshes a task Running on that cell, so convergence does not fail it as lost. An error
(cancelled, failed, on another cell) tells the cell to stop the task."""

from taskfn import api
from taskfn.adapters import bbs
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/heartbeat")
def heartbeat_task():
    api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.HeartbeatTaskRequest)
    cells.heartbeat(request.task_guid, request.cell_id)
    return bbs.answer()


handler = api.entrypoint(app)
