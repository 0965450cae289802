"""GET /v1/task/list: the caller's tasks, newest first, one Query per page."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()
settings = get_settings()


@app.get("/v1/task/list")
def list_tasks():
    limit, cursor = api.page_params(
        app, default=settings.list_page_default, maximum=settings.list_page_max
    )
    records, next_cursor = tasks.list(api.caller(app), limit=limit, cursor=cursor)
    items = [greencloud.task_list_item(record) for record in records]
    return api.json_response(200, items, greencloud.page_headers(next_cursor))


handler = api.entrypoint(app)
