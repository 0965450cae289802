"""POST /v1/tasks/start (BBS StartTask, cells only): {task_guid, cell_id} → {error,
should_start}; false without an error when the task already runs on that cell."""

from taskfn import api
from taskfn.adapters import bbs
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/start")
def start_task():
    api.caller(app, scopes=api.CELL_SCOPES)
    request = bbs.parse(app, bbs.StartTaskRequest)
    return bbs.answer(should_start=cells.start(request.task_guid, request.cell_id))


handler = api.entrypoint(app)
