"""POST /v1/tasks/resolving (BBS ResolvingTask): {task_guid} → {error}; Completed → Resolving."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/resolving", **apidoc.route(
    doc.API, operation_id="resolvingTask", summary="Mark a Completed task Resolving",
    body=doc.body(bbs.TaskGuidRequest), answers=doc.DONE))
def resolving_task():
    caller = api.caller(app)
    cells.resolving(caller, bbs.parse(app, bbs.TaskGuidRequest).task_guid)
    return bbs.answer()


handler = api.entrypoint(app)
