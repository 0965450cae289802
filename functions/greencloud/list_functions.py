"""GET /v1/function/list[?tag=]: the caller's functions, newest first, one Query per page;
with `tag`, those that carry it, through the tag's index (never a read of the others)."""

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
    description="With `tag`, only those that carry it (one of the caller's tags; 404 "
                "otherwise); such a page may hold fewer than limit functions, with a cursor "
                "to go on.",
    parameters=(*doc.PAGE, apidoc.query("tag", doc.ID, "only the functions with this tag")),
    answers={200: doc.page_of("FunctionListItem")}, errors=(400, 404)))
def list_functions():
    caller = api.caller(app)
    limit, cursor = api.page_params(
        app, default=settings.list_page_default, maximum=settings.list_page_max
    )
    page = functions.page(caller, limit=limit, cursor=cursor, tag=api.query(app).get("tag"))
    items = [greencloud.function_list_item(record, tags=page.tags) for record in page.functions]
    return api.json_response(200, items, greencloud.page_headers(page.cursor))


handler = api.entrypoint(app)
