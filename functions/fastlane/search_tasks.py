"""GET /search?query= (and /search/): the caller's task groups whose ids hold any of the
query's whole words, from the index kept at write time."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.adapters import fastlane_doc as doc
from taskfn.errors import InvalidRequest, NotFound
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("search_tasks"))
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/search", **apidoc.route(
    apidoc.FASTLANE, operation_id="searchJobGroups",
    summary="Task groups whose ids hold any of the query's words, by page",
    parameters=(doc.QUERY, doc.PAGE),
    answers={200: apidoc.Answer("a page of task groups", apidoc.ref("FastlanePage"))},
    errors=(400, 404)))
def search_tasks():
    caller = fastlane.caller(app)
    params = api.query(app)
    query = params.get("query") or ""
    if not query:
        raise InvalidRequest("The query param is required.")
    try:
        page = fastlane.page_number(params.get("page"))
    except InvalidRequest as error:
        raise fastlane.in_operation(error, "get_tasks") from None  # as upstream names it
    found = fastlane.query_words(query)
    groups, total = jobs.search(caller, found, page, fastlane.PER_PAGE) \
        if found else ([], 0)
    if page > 1 and not groups:
        raise NotFound("Page not found.")
    links = fastlane.links(app)
    return api.json_response(200, fastlane.pagination(
        [fastlane.group_item(group, links) for group in groups], total=total, page=page,
        base_url=links.base, path="/search/", query={"query": query}))


handler = api.entrypoint(app)
