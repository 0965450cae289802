"""POST /v1/task/{functionId}: the JSON body and query parameters become a task → 201 {id}."""

from taskfn import api, apidoc, aws
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()
aws.client("sqs")  # every create sends: build the client during init, not on a request


@app.post("/v1/task/<function_id>", **apidoc.route(
    doc.API, operation_id="createTask", summary="Run a function as a task",
    description="The body (JSON, or text) and the query parameters become the function's "
                "event.body and event.query. With an Idempotency-Key header, a retry of the "
                "same request within 24 hours answers the first task's id and runs nothing "
                "again; the key reused for another request is 422.",
    body={"required": False, "content": {"application/json": {"schema": {}},
                                          "text/plain": {"schema": {"type": "string"}}}},
    answers={201: doc.created("task")}, errors=(400, 404, 409, 413, 422),
    parameters=(apidoc.IDEMPOTENCY_KEY,)))
def create_task(function_id: str):
    caller = api.caller(app)
    data = api.raw_body(app)
    tasks.check_size(len(data))  # before parsing: a parse costs time on any input
    body = greencloud.parse_task_body(data, app.current_event.headers.get("content-type"))
    task = tasks.create(caller, function_id, body=body, query=api.query(app), size=len(data),
                        idempotency_key=api.idempotency_key(app))
    return api.json_response(201, {"id": task.task_guid})


handler = api.entrypoint(app)
