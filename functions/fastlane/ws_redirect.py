"""GET /tasks/{id}/jobs/{jobId}/ws and …/executions/{executionId}/ws (each with and without
a trailing /): fastlane's WebSocket paths. The HTTP API cannot upgrade a connection, so the
answer is a 307 to the WebSocket API. A client that follows it drops its Authorization
header there (another origin), so the URL carries a ticket for this output, good for 10
minutes, as the stream page's does. Another owner's job is 404."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.livelogs import LiveLogs

app = api.resolver(fastlane.errors_of("stream_job"))
live = LiveLogs.from_env()
REDIRECT = apidoc.Answer("the WebSocket API's URL for this output, in Location (and the body)",
                         {"type": "object", "properties": {"url": {"type": "string"}},
                          "required": ["url"]},
                         headers={"Location": {"schema": {"type": "string"}}})


def _redirect(task_id: str, job_id: str, execution_id: str = ""):
    url = fastlane.followed(app, live, task_id, job_id, execution_id)[3]
    return api.json_response(307, {"url": url}, {
        "Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>/ws", **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobWebSocket",
    summary="Where the job's last execution's output is followed live (a WebSocket)",
    answers={307: REDIRECT}, errors=(404,)))
def job_socket(task_id: str, job_id: str):
    return _redirect(task_id, job_id)


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>/executions/<execution_id>/ws",
                **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobExecutionWebSocket",
    summary="Where one execution's output is followed live (a WebSocket)",
    answers={307: REDIRECT}, errors=(404,)))
def execution_socket(task_id: str, job_id: str, execution_id: str):
    return _redirect(task_id, job_id, execution_id)


handler = api.entrypoint(app)
