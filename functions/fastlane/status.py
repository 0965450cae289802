"""GET /status (and /status/): the caller's counts and scheduled jobs with their next times,
and the platform's queue lengths."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("status"))
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/status", **apidoc.route(
    apidoc.FASTLANE, operation_id="getStatus", summary="Queues, counts and scheduled jobs",
    answers={200: apidoc.Answer("the status", apidoc.ref("FastlaneStatus"))}))
def status():
    view = fastlane.status_view(jobs.status(fastlane.caller(app)), fastlane.links(app))
    return api.json_response(200, view)


handler = api.entrypoint(app)
