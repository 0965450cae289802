"""PUT /tasks/{id}/jobs/{jobId} (and with a trailing /): the job of that UUID, created or
updated, and run again; its 400s are plain text, as fastlane's."""

from taskfn import api, apidoc
from taskfn.adapters import fastlane
from taskfn.services.jobs import JobService

app = api.resolver(fastlane.enqueue_errors_of("create_or_update_task"))
jobs = JobService.from_env()


@fastlane.route(app, "PUT", "/tasks/<task_id>/jobs/<job_id>", **apidoc.route(
    apidoc.FASTLANE, operation_id="upsertJob",
    summary="Create or update the job of that UUID and run it",
    body=apidoc.json_body(apidoc.ref("FastlaneJobPayload")),
    answers={200: apidoc.Answer("the job and its execution", apidoc.ref("FastlaneEnqueued"))},
    errors=(400, 413), text_errors=(400, 413)))
def upsert_job(task_id: str, job_id: str):
    caller = fastlane.caller(app)
    job_id = fastlane.job_uuid(job_id)
    payload = fastlane.parse_enqueue(api.raw_body(app))
    enqueued = jobs.enqueue(caller, fastlane.plain_group_id(task_id), payload,
                            request_ip=fastlane.request_ip(app), job_id=job_id,
                            links_base=fastlane.links(app).base)
    return api.json_response(200, fastlane.enqueue_answer(enqueued, fastlane.links(app)))


handler = api.entrypoint(app)
