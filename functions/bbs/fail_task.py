"""POST /v1/tasks/fail (BBS FailTask, cells only, deprecated upstream): {task_guid,
failure_reason} → {error}; Pending or Running → Completed and failed, from any cell."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/fail", **apidoc.route(
    doc.API, operation_id="failTask", summary="Fail a Pending or Running task (cells)",
    body=doc.body(bbs.FailTaskRequest), answers=doc.DONE))
def fail_task():
    caller = api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.FailTaskRequest)
    cells.fail(request.task_guid, request.failure_reason, cells.acting(caller))
    return bbs.answer()


handler = api.entrypoint(app)
