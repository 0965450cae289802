"""GET /tasks/{id}/jobs/{jobId}/executions/{executionId}/stdout, /stderr and /logs (each
with and without a trailing /): that execution's output as text, with its exit code in
Fastlane-Exit-Code; empty until it has finished."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.adapters import fastlane_doc as doc
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("retrieve_execution_details"))
jobs = JobService.from_env()


def _output(task_id: str, job_id: str, execution_id: str, which: str):
    execution = jobs.output_of(fastlane.caller(app), fastlane.path_id(task_id),
                               fastlane.path_id(job_id), fastlane.path_id(execution_id))
    return fastlane.output_response(execution, which)


for _which in fastlane.OUTPUTS:
    fastlane.route(
        app, "GET", f"/tasks/<task_id>/jobs/<job_id>/executions/<execution_id>/{_which}",
        **apidoc.route(
            apidoc.FASTLANE, operation_id=f"getJobExecution{_which.title()}",
            summary=f"The {_which} of one execution of a job",
            answers={200: doc.output_answer(_which)}, errors=(400, 404)))(
        lambda task_id, job_id, execution_id, _w=_which: _output(
            task_id, job_id, execution_id, _w))


handler = api.entrypoint(app)
