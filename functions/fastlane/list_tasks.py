"""GET /tasks (and /tasks/): the caller's task groups, ten a page, in fastlane's pagination
object with absolute URLs."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.adapters import fastlane_doc as doc
from taskfn.errors import NotFound
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("get_tasks"))
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/tasks", **apidoc.route(
    apidoc.FASTLANE, operation_id="listJobGroups", summary="The caller's task groups, by page",
    parameters=(doc.PAGE,),
    answers={200: apidoc.Answer("a page of task groups", apidoc.ref("FastlanePage"))},
    errors=(400, 404)))
def list_tasks():
    caller = fastlane.caller(app)
    page = fastlane.page_number(api.query(app).get("page"))
    groups, total = jobs.groups_page(caller, page, fastlane.PER_PAGE)
    if page > 1 and not groups:
        raise NotFound("Page not found.")
    links = fastlane.links(app)
    return api.json_response(200, fastlane.pagination(
        [fastlane.group_item(group, links) for group in groups], total=total, page=page,
        base_url=links.base, path="/tasks/"))


handler = api.entrypoint(app)
