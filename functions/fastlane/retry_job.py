"""POST /tasks/{id}/jobs/{jobId}/retry (and with a trailing /): a new execution of the job,
from its last execution's image and command (a running one is stopped first)."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("retry_job"))
jobs = JobService.from_env()


@fastlane.route(app, "POST", "/tasks/<task_id>/jobs/<job_id>/retry", **apidoc.route(
    apidoc.FASTLANE, operation_id="retryJob", summary="Run the job again",
    answers={200: apidoc.Answer("the job", apidoc.ref("FastlaneJobSummary"))},
    errors=(400, 404)))
def retry_job(task_id: str, job_id: str):
    job = jobs.retry_job(fastlane.caller(app), fastlane.path_id(task_id),
                         fastlane.path_id(job_id))
    return api.json_response(200, fastlane.job_summary(job, fastlane.links(app)))


handler = api.entrypoint(app)
