"""fastlane's webhooks and e-mails against moto (services/hooks.py): queued from the table's
stream (through JobReactionsFunction's filter) when an execution ends, whoever wrote the end;
delivered to a real 127.0.0.1 server with upstream's body, retried with 2^n × 5 s back-off up
to the hook's own retries, recorded in the execution's metadata; refused for private
addresses; e-mails through SES. The container back-end is the fake of test_container_runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from taskfn import lifecycle, wiring
from taskfn.models import TaskRecord, now_ns
from taskfn.services.hooks import JobHooks, backoff_s
from taskfn.services.jobs import JobService
from taskfn.settings import get_settings
from taskfn.stores.jobs import JobsStore
from tests.integration.helpers import StreamReader

from .helpers import ALICE
from .test_container_runs import enqueue, launched, runs, stopped  # noqa: F401 (a fixture)

SENDER = "jobs@taskfn.example.com"


class Hooked:
    """A webhook server on 127.0.0.1: what it was posted, and the statuses it answers."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, dict]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("X-Hook", "seen")
                self.end_headers()
                self.wfile.write(b"thanks" if status < 400 else b"no")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.posts]


@pytest.fixture
def server() -> Iterator[Hooked]:
    hooked = Hooked()
    yield hooked
    hooked.server.shutdown()


class RecordedSqs:
    """SQS as the hooks use it, with each message sent again kept here too (moto holds a
    delayed message back for real; the test reads its delay and body instead)."""

    def __init__(self) -> None:
        self.client = boto3.client("sqs")
        self.resent: list[tuple[int, dict]] = []

    def send_message(self, **call):
        self.resent.append((call.get("DelaySeconds", 0), json.loads(call["MessageBody"])))
        return self.client.send_message(**call)

    def take(self) -> list[tuple[int, dict]]:
        taken, self.resent = self.resent, []
        return taken


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def hooks(backend, runs) -> tuple[JobHooks, StreamReader, Clock]:  # noqa: F811
    service, runtime = runs
    settings = get_settings().model_copy(update={
        "allow_private_callbacks": True, "notify_from": SENDER})
    jobs = JobService.from_env()
    jobs._runs = service
    clock = Clock()
    hooks = JobHooks(JobsStore(wiring.table()), jobs, boto3.client("sqs"),
                     boto3.client("sesv2"), settings, runtime=runtime, now=clock)
    return hooks, StreamReader(), clock


def queued(kind: str) -> list[dict]:
    """The messages waiting in a hooks queue (drained), delayed ones included."""
    settings = get_settings()
    url = settings.job_webhook_queue_url if kind == "webhook" else settings.job_notify_queue_url
    sqs, found = boto3.client("sqs"), []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not answer.get("Messages"):
            return found
        for message in answer["Messages"]:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def react(hooks: JobHooks, stream: StreamReader) -> dict:
    return hooks.react(stream.records("JobReactionsFunction"))


def hooked_job(server: Hooked, command: str = "echo hi", **fields) -> str:
    return enqueue(command, metadata={"team": "blue"}, webhooks={
        "succeeds": [{"url": f"{server.url}/ok", "headers": {"X-Token": "t0k"}}],
        "fails": [{"url": f"{server.url}/bad"}],
        "finishes": [{"url": f"{server.url}/end"}]}, **fields)


def test_a_run_that_succeeds_posts_upstream_s_body_to_succeeds_and_finishes(
        hooks, runs, server):  # noqa: F811
    hooks, stream, _ = hooks
    service, runtime = runs
    job_id = hooked_job(server)
    guid = launched(service, job_id)
    assert react(hooks, stream) == {"hooks": 0, "stopped": 0}  # running: nothing ended
    assert service.on_event(stopped(runtime, guid, 0, out="hi")) == "succeeded"
    assert react(hooks, stream)["hooks"] == 2
    messages = queued("webhook")
    assert sorted(m["event"] for m in messages) == ["finishes", "succeeds"]
    assert [hooks.deliver(json.dumps(m)) for m in messages] == ["delivered"] * 2
    assert sorted(server.paths()) == ["/end", "/ok"]
    (ok,) = [(headers, body) for path, headers, body in server.posts if path == "/ok"]
    headers, body = ok
    assert headers["X-Token"] == "t0k" and headers["Content-Type"] == "application/json"
    assert body["executionId"] == guid and body["job_id"] == job_id
    assert (body["status"], body["exitCode"], body["log"]) == ("done", 0, "hi")
    assert body["metadata"] == {"custom": {"team": "blue"}}
    # Each answer is kept in the execution's metadata, as upstream's webhookDispatch.
    _, execution = JobService.from_env().execution(ALICE, "group", job_id, guid)
    dispatch = execution.pointer.webhook_dispatch
    assert [d["statusCode"] for d in dispatch] == [200, 200]
    assert {d["url"] for d in dispatch} == {f"{server.url}/ok", f"{server.url}/end"}
    assert dispatch[0]["body"] == "thanks" and dispatch[0]["headers"]["X-Hook"] == "seen"


def test_each_failed_attempt_fires_fails_and_the_retry_that_succeeds_fires_succeeds(
        hooks, runs, server):  # noqa: F811
    hooks, stream, _ = hooks
    service, runtime = runs
    job_id = hooked_job(server, "sh -c 'exit 3'", retries=1)
    guid = launched(service, job_id)
    assert service.on_event(stopped(runtime, guid, 3)) == "retrying"
    react(hooks, stream)
    first = queued("webhook")
    assert sorted((m["event"], m["executionId"]) for m in first) == [
        ("fails", guid), ("finishes", guid)]
    retry = wiring.tasks().get(guid)
    started = wiring.tasks().apply(guid, lifecycle.start("executor-test", retry.retry_at + 1))
    assert service.launch(TaskRecord.model_validate(started.task), "executor-test") == "launched"
    assert service.on_event(stopped(runtime, guid, 0)) == "succeeded"
    react(hooks, stream)
    second = queued("webhook")
    assert sorted((m["event"], m["executionId"]) for m in second) == [
        ("finishes", retry.execution_id), ("succeeds", retry.execution_id)]


def test_a_user_stop_fires_nothing_and_a_timeout_only_finishes(hooks, runs, server):  # noqa: F811
    hooks, stream, _ = hooks
    service, runtime = runs
    jobs = JobService.from_env()
    jobs._runs = service
    stopped_job = hooked_job(server, "sleep 600")
    stopped_guid = launched(service, stopped_job)
    jobs.stop_job(ALICE, "group", stopped_job)
    assert service.on_event(stopped(runtime, stopped_guid, 143)) == "stopped"
    timed_job = hooked_job(server, "sleep 600", timeout=1)
    timed_guid = launched(service, timed_job)
    service.stop(wiring.tasks().get(timed_guid), "timeout")
    assert service.on_event(stopped(runtime, timed_guid, 143)) == "timedout"
    react(hooks, stream)
    assert [(m["event"], m["executionId"]) for m in queued("webhook")] == [
        ("finishes", timed_guid)]


def test_a_failing_webhook_is_retried_with_back_off_up_to_its_retries(hooks, runs, server):  # noqa: F811
    hooks, stream, clock = hooks
    service, runtime = runs
    job_id = enqueue(webhooks={"finishes": [{"url": f"{server.url}/flaky", "retries": 2}]})
    guid = launched(service, job_id)
    service.on_event(stopped(runtime, guid, 0))
    react(hooks, stream)
    (message,) = queued("webhook")
    server.statuses = [500, 503, 502]
    hooks.sqs = sqs = RecordedSqs()
    assert hooks.deliver(json.dumps(message)) == "retrying"
    ((delay, again),) = sqs.take()
    assert delay == 5 and again["retryCount"] == 1 and again["due"] == clock.t + 5
    clock.t += 2
    assert hooks.deliver(json.dumps(again)) == "waiting"  # early: sent on, not posted
    ((delay, again),) = sqs.take()
    assert delay == 3
    clock.t += 3
    assert hooks.deliver(json.dumps(again)) == "retrying"
    ((delay, last),) = sqs.take()
    assert delay == 10 and last["retryCount"] == 2
    clock.t += 10
    assert hooks.deliver(json.dumps(last)) == "gave_up"
    assert sqs.take() == [] and server.paths() == ["/flaky"] * 3
    _, execution = JobService.from_env().execution(ALICE, "group", job_id, guid)
    assert [d["statusCode"] for d in execution.pointer.webhook_dispatch] == [500, 503, 502]
    assert execution.pointer.webhook_dispatch[0]["error"] == "the answer was 500"


def test_a_back_off_longer_than_sqs_delays_is_waited_in_hops(hooks):
    hooks, _, clock = hooks
    assert [backoff_s(n) for n in range(4)] == [5, 10, 20, 40]
    hooks.sqs = sqs = RecordedSqs()
    message = {"kind": "webhook", "owner": "alice", "taskId": "g", "jobId": "j",
               "executionId": "e", "event": "finishes", "url": "http://x", "retryCount": 9}
    hooks._later(message, backoff_s(9))  # 2560 s: 900 + 900 + 760
    waits = []
    for _ in range(3):
        ((delay, message),) = sqs.take()
        waits.append(delay)
        clock.t += delay
        if clock.t < message["due"]:
            assert hooks.deliver(json.dumps(message)) == "waiting"
    assert waits == [900, 900, 760] and clock.t == message["due"]


def test_a_webhook_to_a_private_address_is_refused_recorded_and_not_retried(
        hooks, runs, server):  # noqa: F811
    hooks, stream, _ = hooks
    hooks.settings = hooks.settings.model_copy(update={"allow_private_callbacks": False})
    service, runtime = runs
    job_id = enqueue(webhooks={"finishes": [{"url": f"{server.url}/x", "retries": 5}]})
    guid = launched(service, job_id)
    service.on_event(stopped(runtime, guid, 0))
    react(hooks, stream)
    (message,) = queued("webhook")
    assert hooks.deliver(json.dumps(message)) == "refused"
    assert server.posts == [] and queued("webhook") == []
    _, execution = JobService.from_env().execution(ALICE, "group", job_id, guid)
    assert execution.pointer.webhook_dispatch[0]["error"].startswith("refused")


def test_notify_sends_upstream_s_subjects_through_ses(hooks, runs):  # noqa: F811
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    hooks, stream, _ = hooks
    service, runtime = runs
    boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
    job_id = enqueue("sh -c 'exit 4'", notify={"fails": ["ops@example.com"],
                                                "succeeds": ["never@example.com"]})
    guid = launched(service, job_id)
    service.on_event(stopped(runtime, guid, 4, out="<script>x</script>"))
    react(hooks, stream)
    (message,) = queued("notify")
    assert hooks.deliver(json.dumps(message)) == "sent"
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    mail = sent[-1]
    assert mail.destinations["ToAddresses"] == ["ops@example.com"]
    assert mail.subject == f"[Fastlane] Job group/{job_id} failed with exit code 4!"
    assert "&lt;script&gt;" in mail.body and "<script>" not in mail.body  # the HTML part
    # Without a sender address the e-mail is dropped, as upstream without SMTP.
    hooks.settings = hooks.settings.model_copy(update={"notify_from": ""})
    assert hooks.deliver(json.dumps(message)) == "dropped"


def test_one_account_s_hooks_send_at_most_their_hourly_budget_and_another_s_are_unaffected(
        hooks, runs, server):  # noqa: F811
    """The amplifier attack: ten hooks with retries on every ending of a failing job. Past
    the hour's budget a webhook is recorded as refused (not retried) and an e-mail dropped;
    another account's budget is its own, and the next hour's is whole again."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    hooks, stream, clock = hooks
    hooks.settings = hooks.settings.model_copy(update={"job_webhooks_per_hour": 3,
                                                       "job_emails_per_hour": 2})
    boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
    service, runtime = runs
    job_id = enqueue("sh -c 'exit 1'", webhooks={"fails": [
        {"url": f"{server.url}/{n}", "retries": 5} for n in range(10)]},
        notify={"fails": [f"ops{n}@example.com" for n in range(10)]})
    guid = launched(service, job_id)
    service.on_event(stopped(runtime, guid, 1))
    react(hooks, stream)
    posts, mails = queued("webhook"), queued("notify")
    assert len(posts) == 10 and len(mails) == 10
    sent_before = len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)
    outcomes = [hooks.deliver(json.dumps(message)) for message in posts]
    assert outcomes == ["delivered"] * 3 + ["over_budget"] * 7
    assert len(server.posts) == 3 and queued("webhook") == []  # nothing retried
    assert [hooks.deliver(json.dumps(message)) for message in mails] == \
        ["sent"] * 2 + ["over_budget"] * 8
    assert len(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages) == sent_before + 2
    _, execution = JobService.from_env().execution(ALICE, "group", job_id, guid)
    assert "webhooks of the hour" in execution.pointer.webhook_dispatch[-1]["error"]
    # Another account's sends are counted apart: alice's hour is spent, bob's is not.
    assert not hooks._spend(ALICE.user, "webhook", 3) and hooks._spend("bob", "webhook", 3)
    # The next hour, alice's budget is whole again.
    clock.t += 3600
    assert hooks.deliver(json.dumps(posts[5])) == "delivered"


def test_a_container_whose_task_was_cancelled_elsewhere_is_stopped(hooks, runs):  # noqa: F811
    hooks, stream, _ = hooks
    service, runtime = runs
    guid = launched(service, enqueue("sleep 600"))
    ref = wiring.tasks().get(guid).container_ref
    wiring.tasks().apply(guid, lifecycle.cancel(now_ns()))  # as the Cell API cancels
    assert react(hooks, stream)["stopped"] == 1
    assert runtime.stops[-1][0] == ref


def test_a_message_that_is_not_one_is_dropped(hooks):
    hooks, _, _ = hooks
    assert hooks.deliver("not json") == "ignored"
    assert hooks.deliver(json.dumps({"kind": "webhook"})) == "ignored"


def test_the_running_set_follows_launches_and_ends_and_status_lists_it(hooks, runs):  # noqa: F811
    hooks, stream, _ = hooks
    service, runtime = runs
    jobs = JobService.from_env()
    jobs._runs = service
    guid = launched(service, enqueue("sleep 600"))
    react(hooks, stream)
    ref = wiring.tasks().get(guid).container_ref
    assert [r.container_ref for r in JobsStore(wiring.table()).running("alice", limit=10)] == [ref]
    status = jobs.status(ALICE)
    assert [r.container_ref for r in status.running] == [ref]
    assert service.on_event(stopped(runtime, guid, 0)) == "succeeded"
    react(hooks, stream)
    assert JobsStore(wiring.table()).running("alice", limit=10) == []
