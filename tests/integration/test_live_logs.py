"""The live logs' pump against moto (DynamoDB, SQS, CloudWatch Logs), with API Gateway's
@connections API recorded: every connection gets the output in order and each chunk once,
across a late join and a lease handover; the close codes and reasons are fastlane's; a
second pump never copies while the first holds the lease."""

from __future__ import annotations

import json
from collections.abc import Callable

import boto3
import pytest

from taskfn import lifecycle, wiring
from taskfn.adapters.fastlane import parse_enqueue
from taskfn.models import now_ns
from taskfn.runtime.containers import log_stream, source_record
from taskfn.services.jobs import JobService
from taskfn.services.livelogs import HANDOVER_MS, LiveLogs
from taskfn.services.tokens import TokenService
from taskfn.settings import get_settings
from taskfn.stores.jobs import JobsStore
from taskfn.stores.livelogs import LiveLogStore
from tests.integration.helpers import ALICE

ARN = "arn:aws:ecs:us-east-1:123456789012:task/jobs/00112233445566778899aabbccddeeff"


class Connections:
    """API Gateway's @connections API as the pump sees it: what each connection was sent,
    and how it was closed."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}
        self.closed: dict[str, tuple[int, str]] = {}
        self.not_open: set[str] = set()

    def post(self, connection_id: str, text: str) -> bool:
        if connection_id in self.closed or connection_id in self.not_open:
            return False
        self.sent.setdefault(connection_id, []).append(text)
        return True

    def close(self, connection_id: str, code: int, reason: str) -> bool:
        if connection_id in self.closed or connection_id in self.not_open:
            return False
        self.closed[connection_id] = (code, reason)
        return True

    def text(self, connection_id: str) -> str:
        return "".join(self.sent.get(connection_id, []))


class Job:
    """alice's job, its execution launched and running, its output in its log stream."""

    def __init__(self, token: str, *, running: bool = True):
        enqueued = JobService.from_env().enqueue(
            ALICE, "live", parse_enqueue(b'{"image": "alpine", "command": "echo hi"}'),
            request_ip="203.0.113.10")
        self.job_id, self.execution_id = enqueued.job_id, enqueued.execution_id
        self.token = token
        self.cell = f"container:{self.execution_id}"
        self.logs = boto3.client("logs")
        self.group = get_settings().job_log_group
        if running:
            tasks = wiring.tasks()
            tasks.apply(self.execution_id, lifecycle.start("executor-t", now_ns()))
            tasks.apply(self.execution_id, lifecycle.launched(
                "executor-t", self.cell, now_ns(), {"container_ref": ARN,
                                                    "container_status": "RUNNING"}))
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=log_stream(ARN))

    def print(self, *records: str, source: str = "stdout") -> None:
        self.logs.put_log_events(logGroupName=self.group, logStreamName=log_stream(ARN),
                                 logEvents=[{"timestamp": now_ns() // 1_000_000,
                                             "message": source_record(source, record)}
                                            for record in records])

    def finish(self, stdout: str, exit_code: int = 0) -> None:
        wiring.tasks().apply(self.execution_id, lifecycle.complete(
            self.cell, now_ns(), failed=exit_code != 0, extra={
                "exit_code": exit_code, "outcome": "succeeded" if exit_code == 0 else "failed",
                "stdout": stdout, "stderr": "oops" if exit_code else ""}))

    def connect_event(self, connection_id: str, *, this_execution: bool = False,
                      protocol: bool = False, **query: str) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        if protocol:
            headers["Sec-WebSocket-Protocol"] = "taskfn.close.v1"
        parameters = {"task": "live", "job": self.job_id, **query}
        if this_execution:
            parameters["execution"] = self.execution_id
        return {"headers": headers, "queryStringParameters": parameters,
                "requestContext": {"routeKey": "$connect", "eventType": "CONNECT",
                                   "connectionId": connection_id}}


@pytest.fixture
def token(backend) -> str:
    return TokenService.from_env().create("alice", "user").token


def live(connections: Connections, sleep: Callable[[float], None] = lambda _: None) -> LiveLogs:
    table = wiring.table()
    return LiveLogs(LiveLogStore(table), JobsStore(table), wiring.tasks(),
                    settings=get_settings(), queue=boto3.client("sqs"),
                    logs=boto3.client("logs"), connections=connections,
                    tokens=TokenService.from_env(), sleep=sleep)


def pump_messages(wait_s: int = 0) -> list[dict]:
    """What LogPumpQueue holds (taken off it), waiting up to `wait_s` for the first."""
    sqs, url = boto3.client("sqs"), get_settings().log_pump_queue_url
    found = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=0 if found else wait_s)
        messages = answer.get("Messages") or []
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def script(*steps: Callable[[], None]) -> Callable[[float], None]:
    """A pump's sleep that runs one step each time the pump waits (then nothing)."""
    pending = list(steps)

    def sleep(_: float) -> None:
        if pending:
            pending.pop(0)()

    return sleep


def forever() -> int:
    return 900_000


def test_a_running_job_is_streamed_in_order_each_chunk_once_then_closed_wsdone(token):
    job = Job(token)
    connections = Connections()
    job.print("1", "2")
    logs = live(connections, sleep=script(
        lambda: job.print("3\n4", "5"), lambda: None,
        lambda: (job.print("6"), job.finish("1\n2\n3\n4\n5\n6"))))
    assert logs.connect(job.connect_event("conn-a"))["statusCode"] == 200
    (message,) = pump_messages()
    assert message["executionId"] == job.execution_id
    assert logs.pump(json.dumps(message), forever) == "idle"
    assert connections.text("conn-a") == "1\n2\n3\n4\n5\n6\n"
    assert connections.closed["conn-a"] == (1000, "wsdone")
    # The pump's records are gone with the connection; the lease is free again.
    store = LiveLogStore(wiring.table())
    assert store.listeners(job.execution_id) == [] and store.connection_by_id("conn-a") is None
    assert store.head(job.execution_id).next_seq >= 3
    assert store.lease(job.execution_id)[1] == 0
    assert pump_messages() == []


def test_a_late_subscriber_first_gets_everything_already_written(token):
    job = Job(token)
    connections = Connections()
    logs = live(connections)
    job.print("early-1", "early-2")
    logs.connect(job.connect_event("first"))

    def late() -> None:
        # Joins once the first has had the early lines; its own pump message finds the
        # lease taken and the holder takes it up.
        logs.connect(job.connect_event("second", this_execution=True, protocol=True))
        assert [m.get("connectionId") for m in pump_messages()] == ["second"]
        job.print("later")

    logs.sleep = script(late, lambda: None, lambda: job.finish("early-1\nearly-2\nlater"))
    (message,) = pump_messages()
    assert logs.pump(json.dumps(message), forever) == "idle"
    assert connections.text("first") == "early-1\nearly-2\nlater\n"
    # The second had the earlier lines first; its close came in band too (the subprotocol).
    assert connections.sent["second"][0].startswith("early-1\nearly-2\n")
    assert connections.sent["second"][-1] == "\u0000close 1000 wsdone"
    assert "".join(connections.sent["second"][:-1]) == "early-1\nearly-2\nlater\n"
    assert connections.closed == {"first": (1000, "wsdone"), "second": (1000, "wsdone")}


def test_a_handover_goes_on_where_the_last_pump_stopped(token):
    job = Job(token)
    connections = Connections()
    job.print("a", "b")
    logs = live(connections, sleep=script(lambda: job.print("c")))
    logs.connect(job.connect_event("conn"))
    (message,) = pump_messages()
    left = iter([900_000, 900_000, HANDOVER_MS - 1])
    assert logs.pump(json.dumps(message), lambda: next(left)) == "handover"
    assert connections.text("conn") == "a\nb\nc\n"
    (handover,) = pump_messages()
    assert "connectionId" not in handover
    # The next pump, from the handover, has only what came since.
    logs.sleep = script(lambda: job.print("d"), lambda: job.finish("a\nb\nc\nd"))
    assert logs.pump(json.dumps(handover), forever) == "idle"
    assert connections.text("conn") == "a\nb\nc\nd\n"
    assert connections.closed["conn"] == (1000, "wsdone")


def test_a_second_pump_neither_copies_nor_sends_while_the_first_holds_the_lease(token):
    job = Job(token)
    connections = Connections()
    logs = live(connections)
    job.print("x")
    logs.connect(job.connect_event("conn"))
    (message,) = pump_messages()
    store = LiveLogStore(wiring.table())
    assert store.take_lease(job.execution_id, "another-pump", now_ns() // 1_000_000, 30_000, 0)
    assert logs.pump(json.dumps(message), forever) == "waiting"
    assert connections.sent == {} and store.head(job.execution_id).next_seq == 0
    (again,) = pump_messages(wait_s=5)  # the connection asks again, a second later
    assert again["connectionId"] == "conn" and again["bounces"] == 1


def test_a_finished_job_is_framed_as_upstream_then_closed_1010_wsdone(token):
    job = Job(token)
    job.print("out")
    job.finish("out", exit_code=3)
    connections = Connections()
    logs = live(connections)
    logs.connect(job.connect_event("conn", this_execution=True))
    (message,) = pump_messages()
    assert logs.pump(json.dumps(message), forever) == "idle"
    assert connections.sent["conn"] == ["EXIT CODE: 3\n", "out", "\n-=-\n", "oops"]
    assert connections.closed["conn"] == (1010, "wsdone")


def test_not_started_unknown_and_no_execution_close_as_fastlane_does(token):
    job = Job(token, running=False)  # enqueued
    connections = Connections()
    logs = live(connections)
    logs.connect(job.connect_event("enqueued"))
    logs.connect(job.connect_event("unknown", job="6b3f1c1e-3f7a-4e8e-9a53-0f4f5a7b8c9d"))
    logs.connect(job.connect_event("bad-id", job="not-a-uuid"))
    logs.connect(job.connect_event("no-execution",
                                   execution="6b3f1c1e-3f7a-4e8e-9a53-0f4f5a7b8c9d"))
    for message in pump_messages():
        logs.pump(json.dumps(message), forever)
    assert connections.closed == {"enqueued": (1010, "wsretry"), "unknown": (1000, ""),
                                  "bad-id": (1000, ""), "no-execution": (1000, "wsretry")}
    assert connections.sent == {}
    store = LiveLogStore(wiring.table())
    assert all(store.connection_by_id(c) is None for c in connections.closed)


def test_another_owner_s_job_is_as_unknown_and_bad_handshakes_are_4xx(token):
    job = Job(token, running=False)
    connections = Connections()
    logs = live(connections)
    bob = TokenService.from_env().create("bob", "user").token
    event = job.connect_event("bobs")
    event["headers"]["Authorization"] = f"Bearer {bob}"
    assert logs.connect(event)["statusCode"] == 200
    (message,) = pump_messages()
    assert message["close"] == [1000, ""] and "executionId" not in message
    no_token = job.connect_event("anon")
    del no_token["headers"]["Authorization"]
    assert logs.connect(no_token)["statusCode"] == 401
    assert logs.connect(job.connect_event("long", task="x" * 300))["statusCode"] == 400
    cell = TokenService.from_env().create("ops", "cell", node="n1").token
    event = job.connect_event("cell")
    event["headers"]["Authorization"] = f"Bearer {cell}"
    assert logs.connect(event)["statusCode"] == 403
    assert pump_messages() == []


def test_a_connection_not_open_yet_is_closed_once_it_is(token):
    job = Job(token, running=False)
    connections = Connections()
    connections.not_open.add("young")

    def opened(_: float) -> None:
        connections.not_open.discard("young")

    logs = live(connections, sleep=opened)
    logs.connect(job.connect_event("young"))
    (message,) = pump_messages()
    assert logs.pump(json.dumps(message), forever) == "idle"
    assert connections.closed == {"young": (1010, "wsretry")}


def test_disconnect_removes_the_connection(token):
    job = Job(token)
    logs = live(Connections())
    logs.connect(job.connect_event("leaving"))
    store = LiveLogStore(wiring.table())
    assert [c.connection_id for c in store.listeners(job.execution_id)] == ["leaving"]
    assert logs.disconnect("leaving") is True
    assert store.listeners(job.execution_id) == [] and store.connection_by_id("leaving") is None
    assert logs.disconnect("leaving") is False


@pytest.mark.parametrize("event", [
    {}, {"requestContext": None}, {"requestContext": {"connectionId": 7}},
    {"requestContext": {"connectionId": "c1"}, "headers": ["not", "a", "map"]},
    {"requestContext": {"connectionId": "c1"}, "queryStringParameters": "task=x"},
    {"requestContext": {"connectionId": "c1"}, "queryStringParameters": {"task": ["x"]}},
    {"requestContext": {"connectionId": "c1"}, "queryStringParameters": {"ticket": "nope"}},
])
def test_malformed_connects_are_4xx(token, event):
    status = live(Connections()).connect(event)["statusCode"]
    assert 400 <= status < 500
    assert pump_messages() == []


def test_malformed_pump_messages_are_dropped_not_retried(token):
    logs = live(Connections())
    for body in ("", "[]", "{}", '{"close": [1000]}', '{"executionId": "x"}',
                 '{"executionId": "x", "taskGuid": 1, "owner": "alice"}'):
        assert logs.pump(body, forever) == "ignored"
