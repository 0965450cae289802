"""POST /v1/tasks/list.r3 (BBS Tasks): {domain, cell_id?} → {error, tasks}. A user sees their
own tasks of the domain, a cell every task of it."""

from taskfn import api, apidoc
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()


@app.post("/v1/tasks/list.r3", **apidoc.route(
    doc.API, operation_id="listCellTasks", summary="Tasks of a domain, by cell",
    description="A user sees their own tasks of the domain, a cell every task of it. The "
                "domain is required: tasks are listed by domain.",
    body=doc.body(bbs.TasksRequest, required=False),
    answers=doc.answer("the tasks", **doc.TASKS)))
def list_tasks():
    caller = api.caller(app, scopes=api.ANY_SCOPE)
    request = bbs.parse(app, bbs.TasksRequest)
    found = cells.list(caller, domain=request.domain, cell_id=request.cell_id)
    return bbs.answer(tasks=[bbs.task_view(task) for task in found])


handler = api.entrypoint(app)
