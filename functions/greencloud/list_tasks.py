"""GET /v1/task/list: the caller's tasks, newest first, one Query per page; functionId and
status narrow it (a filtered page may hold fewer than limit tasks, with a cursor)."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

app = api.resolver(greencloud.error_response)
tasks = TaskService.from_env()
settings = get_settings()


@app.get("/v1/task/list", **apidoc.route(
    doc.API, operation_id="listTasks", summary="The caller's tasks",
    parameters=(*doc.PAGE, *doc.TASK_FILTERS), answers={200: doc.page_of("TaskListItem")},
    errors=(400, 404)))
def list_tasks():
    caller = api.caller(app)
    limit, cursor = api.page_params(
        app, default=settings.list_page_default, maximum=settings.list_page_max
    )
    filters = greencloud.parse_task_filters(api.query(app))
    records, next_cursor = tasks.list(caller, limit=limit, cursor=cursor,
                                      function_id=filters.function_id, status=filters.status)
    items = [greencloud.task_list_item(record) for record in records]
    return api.json_response(200, items, greencloud.page_headers(next_cursor))


handler = api.entrypoint(app)
