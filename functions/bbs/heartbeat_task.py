"""POST /v1/tasks/heartbeat (taskfn's extension, cells only): {task_guid, cell_id} → {error};
refreshes a task Running on that cell, so convergence does not fail it as lost. An error
(cancelled, failed, on another cell) tells the cell to stop the task."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/heartbeat", **apidoc.route(
    doc.API, operation_id="heartbeatTask", summary="Say a task still runs on this cell (cells)",
    description="taskfn's extension: an error tells the cell to stop the task.",
    body=doc.body(bbs.HeartbeatTaskRequest), answers=doc.DONE))
def heartbeat_task():
    caller = api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.HeartbeatTaskRequest)
    cells.heartbeat(request.task_guid, request.cell_id, cells.acting(caller, request.cell_id))
    return bbs.answer()


handler = api.entrypoint(app)
