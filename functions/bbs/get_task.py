"""POST /v1/tasks/get_by_task_guid.r3 (BBS TaskByGuid): {task_guid} → {error, task}."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/get_by_task_guid.r3", **apidoc.route(
    doc.API, operation_id="getCellTask", summary="One task by guid",
    body=doc.body(bbs.TaskGuidRequest), answers=doc.answer("the task", **doc.TASK)))
def get_task():
    caller = api.caller(app, scopes=api.ANY_SCOPE)
    request = bbs.parse(app, bbs.TaskGuidRequest)
    return bbs.answer(task=bbs.task_view(cells.get(caller, request.task_guid)))


handler = api.entrypoint(app)
