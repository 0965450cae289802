"""GET /tasks/{id} (and /tasks/{id}/): a task group and its jobs."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("get_task"))
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/tasks/<task_id>", **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobGroup", summary="A task group and its jobs",
    answers={200: apidoc.Answer("the group's jobs", apidoc.ref("FastlaneGroup"))},
    errors=(404,)))
def get_task(task_id: str):
    task_id = fastlane.path_id(task_id)
    found = jobs.group(fastlane.caller(app), task_id)
    links = fastlane.links(app)
    return api.json_response(200, {"taskId": task_id, "jobs": [
        {"id": job_id, "createdAt": fastlane.iso(created), "url": links.job(task_id, job_id)}
        for job_id, created in found]})


handler = api.entrypoint(app)
