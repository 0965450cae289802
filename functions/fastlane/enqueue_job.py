"""POST /tasks/{id} (and /tasks/{id}/): a new job in the task group (created if missing),
run at once; its 400s are plain text, as fastlane's."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.enqueue_errors_of("create_task"))
jobs = JobService.from_env()


@fastlane.route(app, "POST", "/tasks/<task_id>", **apidoc.route(
    apidoc.FASTLANE, operation_id="enqueueJob",
    summary="Create a job in a task group and run it",
    body=apidoc.json_body(apidoc.ref("FastlaneJobPayload")),
    answers={200: apidoc.Answer("the job and its execution", apidoc.ref("FastlaneEnqueued"))},
    errors=(400, 413), text_errors=(400, 413)))
def enqueue_job(task_id: str):
    caller = fastlane.caller(app)
    payload = fastlane.parse_enqueue(api.raw_body(app))
    enqueued = jobs.enqueue(caller, fastlane.plain_group_id(task_id), payload,
                            request_ip=fastlane.request_ip(app),
                            links_base=fastlane.links(app).base)
    return api.json_response(200, fastlane.enqueue_answer(enqueued, fastlane.links(app)))


handler = api.entrypoint(app)
