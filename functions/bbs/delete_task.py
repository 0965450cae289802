"""POST /v1/tasks/delete (BBS DeleteTask): {task_guid} → {error}; removes a Resolving task."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/delete", **apidoc.route(
    doc.API, operation_id="deleteTask", summary="Delete a Resolving task",
    body=doc.body(bbs.TaskGuidRequest), answers=doc.DONE))
def delete_task():
    caller = api.caller(app)
    cells.delete(caller, bbs.parse(app, bbs.TaskGuidRequest).task_guid)
    return bbs.answer()


handler = api.entrypoint(app)
