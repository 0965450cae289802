"""GET /tasks/{id}/jobs/{jobId}/stdout, /stderr and /logs (each with and without a trailing
/): the job's last execution's output as text, with its exit code in Fastlane-Exit-Code;
empty until the execution has finished."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.adapters import fastlane_doc as doc
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.errors_of("retrieve_execution_details"))
jobs = JobService.from_env()


def _output(task_id: str, job_id: str, which: str):
    execution = jobs.output_of(fastlane.caller(app), fastlane.path_id(task_id),
                               fastlane.path_id(job_id), None)
    return fastlane.output_response(execution, which)


for _which in fastlane.OUTPUTS:
    fastlane.route(app, "GET", f"/tasks/<task_id>/jobs/<job_id>/{_which}", **apidoc.route(
        apidoc.FASTLANE, operation_id=f"getJob{_which.title()}",
        summary=f"The {_which} of the job's last execution",
        answers={200: doc.output_answer(_which)}, errors=(400, 404)))(
        lambda task_id, job_id, _w=_which: _output(task_id, job_id, _w))


handler = api.entrypoint(app)
