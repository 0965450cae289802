"""POST /v1/tasks/reject (BBS RejectTask, cells only): {task_guid, rejection_reason} →
{error}; back to Pending for another cell, or failed past the retry limit."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/reject", **apidoc.route(
    doc.API, operation_id="rejectTask", summary="Give a task back for another cell (cells)",
    body=doc.body(bbs.RejectTaskRequest), answers=doc.DONE))
def reject_task():
    caller = api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.RejectTaskRequest)
    cells.reject(request.task_guid, request.rejection_reason, cells.acting(caller))
    return bbs.answer()


handler = api.entrypoint(app)
