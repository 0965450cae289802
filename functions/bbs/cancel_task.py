"""POST /v1/tasks/cancel (BBS CancelTask): {task_guid} → {error}; Pending or Running →
Completed, failed, "task was cancelled"."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/cancel", **apidoc.route(
    doc.API, operation_id="cancelTask", summary="Cancel a Pending or Running task",
    body=doc.body(bbs.TaskGuidRequest), answers=doc.DONE))
def cancel_task():
    caller = api.caller(app)
    cells.cancel(caller, bbs.parse(app, bbs.TaskGuidRequest).task_guid)
    return bbs.answer()


handler = api.entrypoint(app)
