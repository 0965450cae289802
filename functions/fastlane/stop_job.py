"""POST /tasks/{id}/jobs/{jobId}/stop (and with a trailing /): the job's last execution
stopped (failed with "User stopped job execution manually."), and no retry of it follows."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("stop_job"))
jobs = JobService.from_env()


@fastlane.route(app, "POST", "/tasks/<task_id>/jobs/<job_id>/stop", **apidoc.route(
    apidoc.FASTLANE, operation_id="stopJob", summary="Stop the job's last execution",
    answers={200: apidoc.Answer("the job", apidoc.ref("FastlaneJobSummary"))},
    errors=(404,)))
def stop_job(task_id: str, job_id: str):
    job = jobs.stop_job(fastlane.caller(app), fastlane.path_id(task_id),
                        fastlane.path_id(job_id))
    return api.json_response(200, fastlane.job_summary(job, fastlane.links(app)))


handler = api.entrypoint(app)
