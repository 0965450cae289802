"""Provisioning, SQS pollers, LocalStack and `taskfn local` against an in-process moto server."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from moto.server import ThreadedMotoServer

from taskfn.local.invoke import Invoker
from taskfn.local.pollers import Pollers, SqsPoller
from taskfn.local.provision import function_environment, provision
from taskfn.local.stack import LocalStack
from taskfn.local.template import load_template

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto_server():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return moto_server


# --- provisioning -----------------------------------------------------------------------


def test_provision_creates_the_template_resources(aws):
    template = load_template()
    provisioned = provision(template, prefix="itest")
    dynamodb, sqs, s3 = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3")

    assert provisioned.refs["Table"] == "itest-table"
    table = dynamodb.describe_table(TableName="itest-table")["Table"]
    assert {index["IndexName"] for index in table["GlobalSecondaryIndexes"]} == {
        "GSI1",
        "GSI2",
        "GSI3",
        "GSI4",
    }
    gsi3 = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "GSI3")
    assert gsi3["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    gsi4 = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "GSI4")
    assert gsi4["Projection"] == {"ProjectionType": "ALL"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert provisioned.attrs[("Table", "StreamArn")] == table["LatestStreamArn"]
    ttl = dynamodb.describe_time_to_live(TableName="itest-table")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    s3.head_bucket(Bucket=provisioned.refs["Bucket"])
    assert provisioned.refs["Bucket"] == "itest-bucket"

    attributes = sqs.get_queue_attributes(
        QueueUrl=provisioned.refs["TaskQueue"], AttributeNames=["All"]
    )["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": provisioned.attrs[("TaskDeadLetterQueue", "Arn")],
        "maxReceiveCount": 5,
    }
    assert attributes["VisibilityTimeout"] == "960"
    assert provisioned.attrs[("TaskQueue", "QueueName")] == "itest-taskqueue"

    assert function_environment(template, provisioned) == {
        "TABLE_NAME": "itest-table",
        "BUCKET_NAME": "itest-bucket",
        "TASK_QUEUE_URL": provisioned.refs["TaskQueue"],
        "CALLBACK_QUEUE_URL": provisioned.refs["CallbackQueue"],
        "EVENT_BUS_NAME": provisioned.refs["TaskEventBus"],
        "POWERTOOLS_SERVICE_NAME": "taskfn",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # moto runs no Lambdas: locally, user code runs in the executor's sandboxes.
        "ISOLATION": "process",
        "TASK_RETENTION_DAYS": "30",  # the template's TaskRetentionDays, for records' TTL
        "ALLOW_PRIVILEGED": "false",  # the template's AllowPrivileged
        "FUNCTION_NAME_PREFIX": "tfn-local-",
        "FUNCTION_ROLE_ARN": "",
        "FUNCTION_LAYER_ARNS": provisioned.refs["TaskfnLayer"],
        "STACK_NAME": "taskfn-local",
        # Schedules: the group made in moto, the target and Scheduler's role (the stack
        # itself then unsets the target: local/scheduler.py fires from the records).
        "SCHEDULE_GROUP_NAME": "taskfn-local-schedules",
        "SCHEDULE_TARGET_ARN":
            "arn:aws:lambda:us-east-1:123456789012:function:taskfn-local-run-schedule",
        "SCHEDULE_ROLE_ARN": "arn:aws:iam::123456789012:role/itest-schedulerrole",
        # fastlane jobs: the cluster and log group made in moto, the network parameters'
        # defaults, ECS's role and the timeout watch's queue.
        "JOBS_CLUSTER_ARN": "arn:aws:ecs:us-east-1:123456789012:cluster/itest-jobscluster",
        "JOB_LOG_GROUP": "itest-jobloggroup",
        "JOB_SUBNETS": "",
        "JOB_SECURITY_GROUPS": "",
        "JOB_ASSIGN_PUBLIC_IP": "false",
        "JOB_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/itest-jobexecutionrole",
        "CONTAINER_WATCH_QUEUE_URL": provisioned.refs["ContainerWatchQueue"],
        "JOB_WEBHOOK_QUEUE_URL": provisioned.refs["JobWebhookQueue"],
        "JOB_NOTIFY_QUEUE_URL": provisioned.refs["JobNotifyQueue"],
        "NOTIFY_FROM": "",  # the template's NotifyFrom: e-mails dropped
        # Live logs: the WebSocket API's URLs (the local stack points them at its own
        # server) and the pump's queue.
        "WS_URL": "wss://itest-wsapi.execute-api.us-east-1.amazonaws.com/itest-wsstage",
        "WS_MANAGEMENT_URL":
            "https://itest-wsapi.execute-api.us-east-1.amazonaws.com/itest-wsstage",
        "LOG_PUMP_QUEUE_URL": provisioned.refs["LogPumpQueue"],
    }
    boto3.client("logs").describe_log_groups(logGroupNamePrefix="itest-joblog")
    boto3.client("scheduler").get_schedule_group(Name="taskfn-local-schedules")
    bus = boto3.client("events").describe_event_bus(Name=provisioned.refs["TaskEventBus"])
    assert bus["Arn"] == provisioned.attrs[("TaskEventBus", "Arn")]
    again = provision(template, prefix="itest")  # idempotent: everything is reused
    assert (again.refs, again.attrs) == (provisioned.refs, provisioned.attrs)


# --- SQS pollers ------------------------------------------------------------------------

QUEUE_TEMPLATE = """
Resources:
  Dlq:
    Type: AWS::SQS::Queue
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 2 }
  Raw:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy: { deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 2 }
  Partial:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns
      Handler: worker.partial
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Jobs.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  Strict:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns
      Handler: worker.strict
      Events:
        Raw: { Type: SQS, Properties: { Queue: !GetAtt Raw.Arn, BatchSize: 5 } }
"""

WORKER = """
import collections
import threading

SEEN = collections.Counter()
RECORDS = []
LOCK = threading.Lock()

def _see(record):
    with LOCK:
        SEEN[record["body"]] += 1
        RECORDS.append(record)

def partial(event, context):
    failures = []
    for record in event["Records"]:
        _see(record)
        if record["body"].startswith("bad"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}

def strict(event, context):
    for record in event["Records"]:
        _see(record)
        if record["body"] == "poison":
            raise ValueError("poison")
"""


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_pollers_delete_successes_and_failures_reach_the_dlq(aws, tmp_path):
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "worker.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "template.yaml").write_text(QUEUE_TEMPLATE)
    template = load_template(tmp_path / "template.yaml")
    provisioned = provision(template, prefix="poll")
    sqs = boto3.client("sqs")
    jobs, raw, dlq = (provisioned.refs[name] for name in ("Jobs", "Raw", "Dlq"))
    for body in ("ok-1", "ok-2", "ok-3", "bad-1"):
        sqs.send_message(QueueUrl=jobs, MessageBody=body)
    sqs.send_message(QueueUrl=raw, MessageBody="poison")

    invoker = Invoker(template, prefix="poll")
    worker = invoker.handler("Partial").__globals__
    pollers = Pollers(template, provisioned, invoker, workers=2)
    dead: list[str] = []

    def dlq_has_two() -> bool:
        answer = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in answer.get("Messages", []):
            dead.append(message["Body"])
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        return len(dead) >= 2

    pollers.start()
    try:
        assert _wait_for(dlq_has_two, timeout=60.0), f"DLQ got {dead}, saw {worker['SEEN']}"
    finally:
        pollers.stop()

    assert sorted(dead) == ["bad-1", "poison"]
    seen = worker["SEEN"]
    assert [seen["ok-1"], seen["ok-2"], seen["ok-3"]] == [1, 1, 1]  # deleted the first time
    assert seen["bad-1"] == 2 and seen["poison"] == 2  # maxReceiveCount, then the DLQ

    for url in (jobs, raw):
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessages"] == "0"
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    record = next(r for r in worker["RECORDS"] if r["body"] == "ok-1")
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == provisioned.attrs[("Jobs", "Arn")]
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["md5OfBody"] and record["receiptHandle"]


SESSION_TEMPLATE = """
Resources:
  Sessions:
    Type: AWS::SQS::Queue
    Properties: { VisibilityTimeout: 60 }
  Follow:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns
      Handler: session.follow
      Events:
        Sessions: { Type: SQS, Properties: { Queue: !GetAtt Sessions.Arn, BatchSize: 1 } }
"""

SESSION = """
import threading

RELEASE = threading.Event()
STARTED = []
LOCK = threading.Lock()

def follow(event, context):
    body = event["Records"][0]["body"]
    with LOCK:
        STARTED.append(body)
    if body.startswith("long"):
        RELEASE.wait(30)
"""


class _CountingPoller(SqsPoller):
    """The real poller, counting the long polls in flight at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def fetch(self, client):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return super().fetch(client)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def sessions(aws, tmp_path):
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "session.py").write_text(textwrap.dedent(SESSION))
    (tmp_path / "template.yaml").write_text(SESSION_TEMPLATE)
    template = load_template(tmp_path / "template.yaml")
    provisioned = provision(template, prefix=f"sess{time.monotonic_ns()}")
    invoker = Invoker(template, prefix="sess")
    worker = invoker.handler("Follow").__globals__
    poller = _CountingPoller(template.sqs_sources[0], provisioned.refs["Sessions"],
                             provisioned.attrs[("Sessions", "Arn")], invoker, workers=4)
    poller.start()
    try:
        yield poller, provisioned.refs["Sessions"], worker
    finally:
        worker["RELEASE"].set()
        poller.stop()


def test_an_idle_queue_is_long_polled_by_one_worker_of_four(sessions):
    poller, _, _ = sessions
    assert _wait_for(lambda: poller._parked == 3), "the spare workers never parked"
    with poller.lock:
        poller.most = 0
    assert _wait_for(lambda: poller.most == 1 and poller._parked == 3, timeout=5)
    time.sleep(1.5)  # another idle long poll: still one at a time
    assert poller.most == 1


def test_long_sessions_take_a_worker_each_and_the_queue_keeps_moving(sessions):
    poller, queue, worker = sessions
    sqs = boto3.client("sqs")
    for body in ("long-1", "long-2", "long-3", "quick"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
        assert _wait_for(lambda b=body: b in worker["STARTED"]), (body, worker["STARTED"])
    # Three sessions hold three workers; the fourth still took "quick". Once they end,
    # the spare workers park again.
    worker["RELEASE"].set()
    assert _wait_for(lambda: poller._parked == 3)


# --- LocalStack and the CLI -------------------------------------------------------------


@pytest.mark.slow
def test_local_stack_starts_and_stops(monkeypatch):
    pytest.importorskip("taskfn.services.tokens")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://before")
    monkeypatch.delenv("TABLE_NAME", raising=False)
    with LocalStack(port=0, admin_token="tfn_given_admin_token_1", access_log=False) as stack:
        assert stack.url.startswith("http://127.0.0.1:") and not stack.url.endswith(":0")
        assert os.environ["AWS_ENDPOINT_URL"] == stack.moto_endpoint
        assert os.environ["TABLE_NAME"] == "taskfn-local-table"
        assert stack.admin_token == "tfn_given_admin_token_1"
        assert stack.admin_token_generated is False
        boto3.client("dynamodb").describe_table(TableName="taskfn-local-table")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{stack.url}/v1/task/list", timeout=10)
        assert refused.value.code == 401
    assert os.environ["AWS_ENDPOINT_URL"] == "http://before"
    assert "TABLE_NAME" not in os.environ


@pytest.mark.slow
def test_cli_serves_until_sigterm(tmp_path):
    pytest.importorskip("taskfn.services.tokens")
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "taskfn.cli", "local", "--memory", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout.readline()
                                                          for _ in "123"))
    reader.start()
    reader.join(90)
    try:
        assert len(lines) == 3, lines
        assert lines[0].startswith("taskfn local: serving http://127.0.0.1:")
        url = lines[0].split()[-1]
        assert lines[1].startswith("taskfn local: live logs at ws://127.0.0.1:")
        assert lines[2].startswith("admin token: ") and len(lines[2].split()[-1]) >= 16
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/v1/task/list", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "GET /v1/task/list 401" in errors
