"""GET /tasks/{id}/jobs/{jobId}/stream and …/executions/{executionId}/stream (each with and
without a trailing /): an HTML page that follows the job's last execution (or that one)
live over the WebSocket API. The page connects with a ticket made here (a browser sends no
Authorization header on a WebSocket), good for that output only, for 10 minutes."""

import secrets

from taskfn import api, apidoc
from taskfn.adapters import fastlane, fastlane_stream
from taskfn.powertools import Response
from taskfn.services.livelogs import TICKET_S, LiveLogs

app = api.resolver(fastlane.errors_of("stream_job"))
live = LiveLogs.from_env()
PAGE = apidoc.Answer("the page (text/html)", {"type": "string"}, media="text/html")


def _page(task_id: str, job_id: str, execution_id: str = "") -> Response:
    task_id, job_id, execution_id, url = fastlane.followed(app, live, task_id, job_id,
                                                          execution_id)
    nonce = secrets.token_urlsafe(18)
    ws_url = live.settings.ws_url
    body = fastlane_stream.page(task_id=task_id, job_id=job_id, execution_id=execution_id,
                                nonce=nonce, url=url, ticket_seconds=TICKET_S)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=body,
                    headers={"Content-Security-Policy":
                             fastlane_stream.content_security_policy(ws_url, nonce),
                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                             "X-Content-Type-Options": "nosniff"})


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>/stream", **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobStreamPage",
    summary="A page following the output of the job's last execution live",
    answers={200: PAGE}, errors=(404,)))
def job_page(task_id: str, job_id: str):
    return _page(task_id, job_id)


@fastlane.route(app, "GET", "/tasks/<task_id>/jobs/<job_id>/executions/<execution_id>/stream",
                **apidoc.route(
    apidoc.FASTLANE, operation_id="getJobExecutionStreamPage",
    summary="A page following one execution's output live", answers={200: PAGE},
    errors=(404,)))
def execution_page(task_id: str, job_id: str, execution_id: str):
    return _page(task_id, job_id, execution_id)


handler = api.entrypoint(app)
