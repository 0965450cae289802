"""fastlane's jobs API over HTTP, as a fastlane client uses it (HTTP Basic with a taskfn
token as the password): enqueue, list, search, details and outputs; another owner's groups
are 404; every GET answers with and without its trailing slash."""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from datetime import datetime

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e


class Fastlane:
    """A fastlane client: Basic auth, any user name."""

    def __init__(self, stack: Client, token: str):
        self.anonymous = Client(stack.url)
        self.auth = {"Authorization": "Basic " + base64.b64encode(
            f"fastlane:{token}".encode()).decode()}

    def __call__(self, method: str, path: str, body=None, **keywords):
        return self.anonymous.request(method, path, body,
                                      headers={**self.auth, **keywords.pop("headers", {})},
                                      **keywords)


@pytest.fixture(scope="module")
def carol(stack: Client) -> Fastlane:
    answer = stack.request("POST", "/v1/tokens", {"user": "carol-fl", "scope": "user"})
    return Fastlane(stack, answer.json()["token"])


@pytest.fixture(scope="module")
def dave(stack: Client) -> Fastlane:
    answer = stack.request("POST", "/v1/tokens", {"user": "dave-fl", "scope": "user"})
    return Fastlane(stack, answer.json()["token"])


def finished(client: Fastlane, task_id: str, job_id: str, timeout: float = 60) -> dict:
    """The job's details once its last execution has finished."""
    deadline = time.monotonic() + timeout
    while True:
        job = client("GET", f"/tasks/{task_id}/jobs/{job_id}").json()["job"]
        status = job["executions"][0]["status"] if job["executions"] else "none"
        if status not in ("enqueued", "pulling", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_enqueue_list_search_details_and_outputs(stack: Client, carol: Fastlane):
    enqueued = carol("POST", "/tasks/nightly-Report", {
        "image": "alpine:3", "command": "echo hello",
        "envs": {"DB_PASSWORD": "hunter2", "REGION": "eu"}})
    assert enqueued.status == 200, enqueued
    answer = enqueued.json()
    assert set(answer) == {"taskId", "jobId", "executionId", "executionUrl", "queueJobId",
                           "jobUrl", "taskUrl"}
    job_id = answer["jobId"]
    assert answer["taskUrl"] == f"{stack.url}/tasks/nightly-Report/"
    assert answer["jobUrl"] == f"{stack.url}/tasks/nightly-Report/jobs/{job_id}/"
    assert answer["executionUrl"].endswith(f"/executions/{answer['executionId']}/")
    # The run is a taskfn task too, under the platform API.
    assert carol("GET", f"/v1/task/{answer['queueJobId']}").status == 200
    assert answer["queueJobId"] == answer["executionId"]

    listed = carol("GET", "/tasks").json()
    assert listed["total"] == 1 and listed["items"][0]["taskId"] == "nightly-Report"
    assert listed["items"][0]["jobsCount"] == 1
    assert carol("GET", "/search?query=report").json()["items"][0]["taskId"] == \
        "nightly-Report"
    assert carol("GET", "/search/?query=night").json()["total"] == 0  # whole words only

    group = carol("GET", "/tasks/nightly-Report/").json()
    assert [j["id"] for j in group["jobs"]] == [job_id]

    job = finished(carol, "nightly-Report", job_id)
    assert job["id"] == job_id and job["image"] == "alpine:3"
    assert job["metadata"]["envs"] == {"DB_PASSWORD": "***", "REGION": "eu"}
    (execution,) = job["executions"]
    assert execution["executionId"] == answer["executionId"]
    assert execution["url"] == answer["executionUrl"]
    assert (execution["status"], execution["exitCode"], execution["log"]) == ("done", 0, "hello")

    for path in ("stdout", "stdout/", f"executions/{answer['executionId']}/stdout"):
        output = carol("GET", f"/tasks/nightly-Report/jobs/{job_id}/{path}")
        assert output.status == 200, (path, output)
        assert output.headers["Content-Type"].startswith("text/plain")
        assert output.body == b"hello"
        assert output.headers["Fastlane-Exit-Code"] == "0"

    details = carol("GET", f"/tasks/nightly-Report/jobs/{job_id}/executions/"
                    f"{answer['executionId']}/").json()
    assert details["execution"]["executionId"] == answer["executionId"]
    assert details["job"]["url"] == answer["jobUrl"]


def test_put_normalises_the_uuid_and_updates_the_job(carol: Fastlane):
    job_id = uuid.uuid4()
    first = carol("PUT", f"/tasks/upserts/jobs/{job_id.hex.upper()}",
                  {"image": "a", "command": "true"})
    assert first.status == 200, first
    assert first.json()["jobId"] == str(job_id)
    again = carol("PUT", f"/tasks/upserts/jobs/{job_id}/", {"image": "b", "command": "true"})
    assert again.status == 200 and again.json()["jobId"] == str(job_id)
    job = carol("GET", f"/tasks/upserts/jobs/{job_id}").json()["job"]
    assert job["image"] == "b" and job["executionCount"] == 2
    assert carol("GET", "/tasks/upserts").json()["jobs"] == [
        {"id": str(job_id), "createdAt": job["createdAt"],
         "url": f"{carol.anonymous.url}/tasks/upserts/jobs/{job_id}/"}]
    refused = carol("PUT", "/tasks/upserts/jobs/not-a-uuid", {"image": "a", "command": "b"})
    assert refused.status == 400 and refused.headers["Content-Type"].startswith("text/plain")
    assert refused.body.decode() == ("The job_id not-a-uuid is not a valid UUID4. "
                                     "All job IDs must be UUID4.")


@pytest.mark.parametrize(("body", "text"), [
    (b"{not json", "Failed to enqueue task because JSON body could not be parsed."),
    (b"[1, 2]", "Failed to enqueue task because JSON body could not be parsed."),
    (b'{"image": "a"}', "image and command must be filled in the request."),
    (b'{"image": "a", "command": "b", "startIn": "5m", "cron": "* * * * *"}',
     "Only ONE of 'startAt', 'startIn' and 'cron' should be in the request."),
])
def test_enqueue_refusals_are_plain_text_and_write_nothing(carol: Fastlane, body, text):
    answer = carol("POST", "/tasks/refused-group", body, content_type="application/json")
    assert answer.status == 400 and answer.body.decode() == text
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert carol("GET", "/tasks/refused-group").status == 404


@pytest.mark.slow
def test_pagination_bounds_and_absolute_urls(stack: Client, dave: Fastlane):
    for n in range(12):
        assert dave("POST", f"/tasks/page-{n:02d}", {"image": "a", "command": "true"}).status \
            == 200
    first = dave("GET", "/tasks").json()
    assert {k: first[k] for k in ("total", "page", "pages", "perPage", "hasNext", "hasPrev",
                                  "prevUrl")} == {
        "total": 12, "page": 1, "pages": 2, "perPage": 10, "hasNext": True, "hasPrev": False,
        "prevUrl": None}
    assert first["nextUrl"] == f"{stack.url}/tasks/?page=2"
    second = dave("GET", "/tasks/?page=2").json()
    assert [i["taskId"] for i in second["items"]] == ["page-10", "page-11"]
    assert second["prevUrl"] == f"{stack.url}/tasks/?page=1" and second["nextUrl"] is None
    assert dave("GET", "/tasks?page=3").status == 404
    for bad in ("0", "-1", "x", "%C2%B2"):
        refused = dave("GET", f"/tasks?page={bad}")
        assert refused.status == 400, bad
        assert refused.json()["error"] == \
            "Tasks pagination page param should be a positive integer."
    assert dave("GET", "/search").status == 400


def test_another_owner_s_groups_and_jobs_are_404(carol: Fastlane, dave: Fastlane):
    job_id = carol("POST", "/tasks/private-group", {"image": "a", "command": "true"}
                   ).json()["jobId"]
    for path in ("/tasks/private-group", f"/tasks/private-group/jobs/{job_id}",
                 f"/tasks/private-group/jobs/{job_id}/stdout"):
        answer = dave("GET", path)
        assert answer.status == 404, (path, answer)
        assert set(answer.json()) == {"error", "operation"}
    assert dave("GET", "/search?query=private").json()["total"] == 0
    # His own enqueue under the same name makes his own group, not a job in hers.
    assert dave("POST", "/tasks/private-group", {"image": "a", "command": "true"}).status == 200
    assert len(carol("GET", "/tasks/private-group").json()["jobs"]) == 1


def test_without_credentials_the_answer_is_401_in_fastlane_s_shape(stack: Client):
    answer = Client(stack.url).request("GET", "/tasks")
    assert answer.status == 401
    assert answer.json() == {"error": "Authentication required.", "operation": "get_tasks"}
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_a_failing_command_s_outputs_exit_code_and_retries(carol: Fastlane):
    """A non-zero exit is retried (retries 2: three executions), each after its back-off,
    and each keeps its own outputs and exit code."""
    answer = carol("POST", "/tasks/failing", {
        "image": "alpine", "command": "sh -c 'echo out; echo err >&2; exit 3'",
        "retries": 2}).json()
    job_id = answer["jobId"]
    deadline = time.monotonic() + 60
    while True:
        job = finished(carol, "failing", job_id)
        if job["executionCount"] == 3 and job["executions"][0]["status"] == "failed":
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert [e["status"] for e in job["executions"]] == ["failed"] * 3
    assert [e["exitCode"] for e in job["executions"]] == [3, 3, 3]
    assert all((e["log"], e["error"]) == ("out", "err") for e in job["executions"])
    assert job["executions"][-1]["executionId"] == answer["executionId"]  # oldest last
    assert len({e["executionId"] for e in job["executions"]}) == 3
    logs = carol("GET", f"/tasks/failing/jobs/{job_id}/logs")
    assert logs.body == b"out\n-=-\nerr" and logs.headers["Fastlane-Exit-Code"] == "3"
    # The back-off between attempts, from the records: at least 2 s, then at least 4 s.
    oldest_first = job["executions"][::-1]
    gaps = [datetime.fromisoformat(later["startedAt"]) - datetime.fromisoformat(
        earlier["finishedAt"]) for earlier, later in itertools.pairwise(oldest_first)]
    assert gaps[0].total_seconds() >= 2 and gaps[1].total_seconds() >= 4, gaps
    # The platform API sees the run as one task, failed with the last exit code.
    result = carol("GET", f"/v1/task/{answer['queueJobId']}/result")
    assert result.status == 500 and result.json() == {"exitCode": 3, "status": "failed"}


def test_outputs_are_empty_until_the_execution_has_finished(carol: Fastlane):
    job_id = carol("POST", "/tasks/slow", {
        "image": "alpine", "command": "sh -c 'echo early; sleep 30'"}).json()["jobId"]
    running = carol("GET", f"/tasks/slow/jobs/{job_id}/stdout")
    assert running.status == 200 and running.body == b""
    assert running.headers["Fastlane-Exit-Code"] == "None"
    carol("POST", f"/tasks/slow/jobs/{job_id}/stop")


def test_a_stopped_job_fails_with_fastlane_s_text_and_is_not_retried(carol: Fastlane):
    job_id = carol("POST", "/tasks/long", {"image": "alpine", "command": "sleep 600",
                                           "retries": 3}).json()["jobId"]
    deadline = time.monotonic() + 30
    while carol("GET", f"/tasks/long/jobs/{job_id}").json()["job"]["executions"][0][
            "status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # /status lists the running container (the stream's reaction keeps the set).
    while not carol("GET", "/status").json()["containers"]["running"]:
        assert time.monotonic() < deadline + 30
        time.sleep(0.2)
    for running in carol("GET", "/status").json()["containers"]["running"]:
        assert running["host"] == "local-process" and running["id"].startswith("arn:aws:ecs:")
    stopped = carol("POST", f"/tasks/long/jobs/{job_id}/stop/")
    assert stopped.status == 200, stopped
    assert stopped.json() == {"taskId": "long", "jobId": job_id,
                              "jobUrl": f"{carol.anonymous.url}/tasks/long/jobs/{job_id}/",
                              "taskUrl": f"{carol.anonymous.url}/tasks/long/"}
    job = finished(carol, "long", job_id)
    (execution,) = job["executions"]
    assert execution["status"] == "failed"
    assert execution["error"].endswith("User stopped job execution manually.")
    time.sleep(3)  # a retry would have been queued after 2 s
    assert carol("GET", f"/tasks/long/jobs/{job_id}").json()["job"]["executionCount"] == 1


def test_a_job_past_its_timeout_is_timed_out(carol: Fastlane):
    job_id = carol("POST", "/tasks/timeouts", {"image": "alpine", "command": "sleep 60",
                                               "timeout": 2, "retries": 2}).json()["jobId"]
    job = finished(carol, "timeouts", job_id)
    (execution,) = job["executions"]  # a timeout is never retried
    assert execution["status"] == "timedout", execution
    assert "Job execution timed out after 2 seconds." in execution["error"]


def test_retry_runs_the_job_again_and_its_rules(carol: Fastlane):
    job_id = carol("POST", "/tasks/retried", {"image": "alpine", "command": "sh -c 'exit 1'"}
                   ).json()["jobId"]
    assert finished(carol, "retried", job_id)["executions"][0]["status"] == "failed"
    again = carol("POST", f"/tasks/retried/jobs/{job_id}/retry")
    assert again.status == 200 and again.json()["jobId"] == job_id, again
    deadline = time.monotonic() + 30
    while (job := finished(carol, "retried", job_id))["executionCount"] != 2:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert [e["status"] for e in job["executions"]] == ["failed", "failed"]
    unknown = carol("POST", f"/tasks/retried/jobs/{uuid.uuid4()}/retry")
    assert unknown.status == 404
    assert unknown.json() == {"error": "Job not found in task.", "operation": "retry_job"}


def test_an_expired_job_is_not_run(carol: Fastlane):
    job_id = carol("POST", "/tasks/expired", {"image": "alpine", "command": "echo never",
                                              "expiration": 1_000_000}).json()["jobId"]
    (execution,) = finished(carol, "expired", job_id)["executions"]
    assert execution["status"] == "expired" and execution["log"] == ""
    assert execution["error"].startswith("Job was supposed to be done before 1970-01-12T13:46:40")


def test_stop_of_an_execution_and_its_404s(carol: Fastlane):
    answer = carol("POST", "/tasks/stop-one", {"image": "alpine", "command": "sleep 600"}
                   ).json()
    job_id, execution_id = answer["jobId"], answer["executionId"]
    stopped = carol("POST", f"/tasks/stop-one/jobs/{job_id}/executions/{execution_id}/stop")
    assert stopped.status == 200, stopped
    assert stopped.json()["execution"] == {"id": execution_id, "url": answer["executionUrl"]}
    assert finished(carol, "stop-one", job_id)["executions"][0]["status"] == "failed"
    missing = carol("POST", f"/tasks/stop-one/jobs/{job_id}/executions/{uuid.uuid4()}/stop")
    assert missing.status == 404 and missing.json()["operation"] == "stop_job_execution"


def test_a_one_shot_job_runs_once_later(carol: Fastlane):
    answer = carol("POST", "/tasks/later", {"image": "alpine", "command": "echo later",
                                            "startIn": "2s"}).json()
    assert answer["executionId"] is None and answer["executionUrl"] is None
    assert answer["queueJobId"]  # the schedule's id
    job_id = answer["jobId"]
    job = carol("GET", f"/tasks/later/jobs/{job_id}").json()["job"]
    assert job["scheduled"] is True and job["executions"] == []
    assert carol("GET", f"/tasks/later/jobs/{job_id}/stdout").status == 400  # none yet
    deadline = time.monotonic() + 40
    while not (job := carol("GET", f"/tasks/later/jobs/{job_id}").json()["job"])[
            "executions"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    job = finished(carol, "later", job_id)
    assert [e["log"] for e in job["executions"]] == ["later"]
    assert job["scheduled"] is False  # fired: no longer scheduled


def test_a_cron_job_is_listed_in_status_and_stop_unschedules_it(carol: Fastlane):
    job_id = carol("POST", "/tasks/nightly", {"image": "alpine", "command": "echo cron",
                                              "cron": "0 3 * * *"}).json()["jobId"]
    status = carol("GET", "/status/").json()
    (listed,) = [j for j in status["jobs"]["scheduled"] if j["id"] == job_id]
    assert listed["nextScheduledAt"].endswith("T03:00:00")
    assert listed["stopUrl"] == f"{carol.anonymous.url}/tasks/nightly/jobs/{job_id}/stop/"
    assert listed["metadata"]["cron"] == "0 3 * * *"
    assert status["queues"]["scheduled"]["length"] >= 1
    assert status["fastlane"]["executor"] == "local-process"
    refused = carol("POST", f"/tasks/nightly/jobs/{job_id}/retry")
    assert refused.status == 400
    assert refused.json() == {"error": "Can't retry a scheduled job.", "operation": "retry_job"}
    assert carol("POST", f"/tasks/nightly/jobs/{job_id}/stop").status == 200
    assert job_id not in [j["id"] for j in carol("GET", "/status").json()["jobs"]["scheduled"]]
    assert carol("GET", f"/tasks/nightly/jobs/{job_id}").json()["job"]["scheduled"] is False
    # No executions yet: nothing to retry.
    nothing = carol("POST", f"/tasks/nightly/jobs/{job_id}/retry")
    assert nothing.json()["error"] == "No execution yet to retry."


def test_a_put_replaces_a_job_s_schedule(carol: Fastlane):
    job_id = str(uuid.uuid4())
    carol("PUT", f"/tasks/replaced/jobs/{job_id}", {"image": "a", "command": "true",
                                                    "cron": "0 4 * * *"})
    again = carol("PUT", f"/tasks/replaced/jobs/{job_id}", {"image": "a", "command": "true"})
    assert again.json()["executionId"]  # runs now: no schedule any more
    assert job_id not in [j["id"] for j in carol("GET", "/status").json()["jobs"]["scheduled"]]


def test_webhooks_are_posted_when_a_run_ends_and_retried_while_they_fail(carol: Fastlane):
    """A job's webhooks over the local stack: the failed run's `fails` and `finishes` hooks
    reach a real server, upstream's body and the user's headers; a hook answered 500 is
    posted again after 5 s (its retries: 1); the answers are in the execution's metadata."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    posts: list[tuple[str, float, dict, dict]] = []
    answers = {"/end": [500, 200]}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posts.append((self.path, time.monotonic(), dict(self.headers), body))
            waiting = answers.get(self.path) or [200]
            self.send_response(waiting.pop(0) if len(waiting) > 1 else waiting[0])
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        answer = carol("POST", "/tasks/hooked", {
            "image": "alpine", "command": "sh -c 'echo oops; exit 3'",
            "metadata": {"ticket": "T-1"},
            "webhooks": {"succeeds": [{"url": f"{url}/ok"}],
                         "fails": [{"url": f"{url}/bad", "headers": {"X-Team": "blue"}}],
                         "finishes": [{"url": f"{url}/end", "retries": 1}]}}).json()
        deadline = time.monotonic() + 60
        while len(posts) < 3:
            assert time.monotonic() < deadline, posts
            time.sleep(0.2)
    finally:
        server.shutdown()
    paths = [path for path, _, _, _ in posts]
    assert sorted(paths) == ["/bad", "/end", "/end"]
    ends = [at for path, at, _, _ in posts if path == "/end"]
    assert ends[1] - ends[0] >= 4.5  # 2^0 × 5 s, as SQS delays it (whole seconds)
    (bad,) = [(headers, body) for path, _, headers, body in posts if path == "/bad"]
    assert bad[0]["X-Team"] == "blue"
    body = bad[1]
    assert (body["executionId"], body["job_id"]) == (answer["executionId"], answer["jobId"])
    assert (body["status"], body["exitCode"], body["log"]) == ("failed", 3, "oops")
    assert body["metadata"] == {"custom": {"ticket": "T-1"}}
    execution = carol("GET", answer["executionUrl"].replace(carol.anonymous.url, "")).json()
    dispatch = execution["execution"]["metadata"]["webhookDispatch"]
    assert sorted(d["statusCode"] for d in dispatch) == [200, 200, 500]
