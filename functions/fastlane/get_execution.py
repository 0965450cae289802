"""GET /tasks/{id}/jobs/{jobId}/executions/{executionId} (and with a trailing /): one
execution, with its output and error."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("get_job_execution"))
jobs = JobService.from_env()


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>/executions/<execution_id>",
                **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobExecution", summary="One execution of a job",
    answers={200: apidoc.Answer("the execution", apidoc.ref("FastlaneExecutionDetails"))},
    errors=(404,)))
def get_execution(task_id: str, job_id: str, execution_id: str):
    job, execution = jobs.execution(fastlane.caller(app), fastlane.path_id(task_id),
                                     fastlane.path_id(job_id), fastlane.path_id(execution_id))
    return api.json_response(200, fastlane.execution_details(job, execution,
                                                             fastlane.links(app)))


handler = api.entrypoint(app)
