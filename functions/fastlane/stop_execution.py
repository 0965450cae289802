"""POST /tasks/{id}/jobs/{jobId}/executions/{executionId}/stop (and with a trailing /): that
execution stopped, if it has not ended; the job's schedule, if any, stays."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("stop_job_execution"))
jobs = JobService.from_env()


@fastlane.route(app, "POST", "/tasks/<task_id>/jobs/<job_id>/executions/<execution_id>/stop",
                **apidoc.route(
    apidoc.FASTLANE, operation_id="stopJobExecution", summary="Stop one execution",
    answers={200: apidoc.Answer("the execution", apidoc.ref("FastlaneStoppedExecution"))},
    errors=(404,)))
def stop_execution(task_id: str, job_id: str, execution_id: str):
    execution_id = fastlane.path_id(execution_id)
    job = jobs.stop_execution(fastlane.caller(app), fastlane.path_id(task_id),
                              fastlane.path_id(job_id), execution_id)
    return api.json_response(200, fastlane.stopped_execution(job, execution_id,
                                                             fastlane.links(app)))


handler = api.entrypoint(app)
