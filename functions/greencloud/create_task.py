"""POST /v1/task/{functionId}: the JSON body and query parameters become a task → 201 {id}."""

from taskfn import api, aws
from taskfn.adapters import greencloud
from taskfn.services.tasks import TaskService

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()
aws.client("sqs")  # every create sends: build the client during init, not on a request


@app.post("/v1/task/<function_id>")
def create_task(function_id: str):
    data = api.raw_body(app)
    body = greencloud.parse_task_body(data, app.current_event.headers.get("content-type"))
    task = tasks.create(
        api.caller(app), function_id, body=body, query=api.query(app), size=len(data)
    )
    return api.json_response(201, {"id": task.task_guid})


handler = api.entrypoint(app)
