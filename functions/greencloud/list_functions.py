"""GET /v1/function/list: the caller's functions, newest first, one Query per page."""

from taskfn import api
from taskfn.adapters import greencloud
from taskfn.services.functions import FunctionService
from taskfn.settings import get_settings

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()
settings = get_settings()


@app.get("/v1/function/list")
def list_functions():
    limit, cursor = api.page_params(
        app, default=settings.list_page_default, maximum=settings.list_page_max
    )
    records, next_cursor = functions.list(api.caller(app), limit=limit, cursor=cursor)
    items = [greencloud.function_list_item(record) for record in records]
    return api.json_response(200, items, greencloud.page_headers(next_cursor))


handler = api.entrypoint(app)
