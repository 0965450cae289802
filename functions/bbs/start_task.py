"""POST /v1/tasks/start (BBS StartTask, cells only): {task_guid, cell_id} → {error,
should_start}; false without an error when the task already runs on that cell."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/start", **apidoc.route(
    doc.API, operation_id="startTask", summary="Start a Pending task on a cell (cells)",
    body=doc.body(bbs.StartTaskRequest),
    answers=doc.answer("whether the cell should run it", should_start={"type": "boolean"})))
def start_task():
    caller = api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.StartTaskRequest)
    rights = cells.acting(caller, request.cell_id)
    return bbs.answer(should_start=cells.start(request.task_guid, request.cell_id, rights))


handler = api.entrypoint(app)
