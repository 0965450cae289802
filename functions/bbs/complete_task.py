"""POST /v1/tasks/complete (BBS CompleteTask, cells only): {task_guid, cell_id, failed,
failure_reason, result} → {error}; only the cell the task runs on may complete it."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/complete", **apidoc.route(
    doc.API, operation_id="completeTask", summary="Complete a task on the cell it runs on (cells)",
    body=doc.body(bbs.CompleteTaskRequest), answers=doc.DONE))
def complete_task():
    caller = api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.CompleteTaskRequest)
    cells.complete(request.task_guid, request.cell_id, failed=request.failed,
                   failure_reason=request.failure_reason, result=request.result,
                   rights=cells.acting(caller, request.cell_id))
    return bbs.answer()


handler = api.entrypoint(app)
