"""POST /v1/tasks/desire.r2 (BBS DesireTask): {task_guid, domain, task_definition} → {error}.
Without placement_tags the built-in executor runs task_definition.function_id."""

from taskfn import api, apidoc, aws
from taskfn.adapters import bbs
from taskfn.adapters import bbs_doc as doc
from taskfn.services.cells import CellService

app = api.resolver(bbs.error_response)
cells = CellService.from_env()
aws.client("sqs")  # most desires send: build the client during init, not on a request


@app.post("/v1/tasks/desire.r2", **apidoc.route(
    doc.API, operation_id="desireTask", summary="Desire a task",
    description="Without placement_tags the built-in executor runs "
                "task_definition.function_id; with them an external cell takes it. With an "
                "Idempotency-Key header, a retry of the same desire within 24 hours succeeds "
                "again; the key reused for another desire is 422.",
    body=doc.body(bbs.DesireTaskRequest), answers=doc.DONE, errors=(422,),
    parameters=(apidoc.IDEMPOTENCY_KEY,)))
def desire_task():
    caller = api.caller(app)
    cells.desire(caller, bbs.parse_desire(app), idempotency_key=api.idempotency_key(app))
    return bbs.answer()


handler = api.entrypoint(app)
