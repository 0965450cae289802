"""GET /tasks/{id}/jobs/{jobId} (and with a trailing /): the job, its metadata (envs
masked) and its 20 newest executions."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("get_task"))  # upstream's name for this route's 404
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>", **apidoc.route(
    apidoc.FASTLANE, operation_id="getJob",
    summary="A job and its 20 newest executions",
    answers={200: apidoc.Answer("the job", apidoc.ref("FastlaneJobDetails"))},
    errors=(404,)))
def get_job(task_id: str, job_id: str):
    job, executions = jobs.job_details(fastlane.caller(app), fastlane.path_id(task_id),
                                      fastlane.path_id(job_id))
    return api.json_response(200, fastlane.job_view(job, executions, fastlane.links(app)))


handler = api.entrypoint(app)
