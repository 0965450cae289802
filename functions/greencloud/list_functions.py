"""GET /v1/function/list: the caller's functions, newest first, one Query per page."""

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.adapters import greencloud_doc as doc
from taskfn.services.functions import FunctionService
from taskfn.settings import get_settings

app = api.resolver(greencloud.error_response)
functions = FunctionService.from_env()
settings = get_settings()


@app.get("/v1/function/list", **apidoc.route(
    doc.API, operation_id="listFunctions", summary="The caller's functions",
    parameters=doc.PAGE, answers={200: doc.page_of("FunctionListItem")}, errors=(400,)))
def list_functions():
    caller = api.caller(app)
    limit, cursor = api.page_params(
        app, default=settings.list_page_default, maximum=settings.list_page_max
    )
    records, next_cursor = functions.list(caller, limit=limit, cursor=cursor)
    items = [greencloud.function_list_item(record) for record in records]
    return api.json_response(200, items, greencloud.page_headers(next_cursor))


handler = api.entrypoint(app)
