"""The local stack with a data directory: what it keeps across a clean stop and start (read
back over HTTP with the same tokens), the admin token's rules, the directory's privacy and
lock, and the parts of local/persistence.py that a stack does not show quickly."""

from __future__ import annotations

import io
import json
import pickle
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from taskfn import aws
from taskfn.local import datadir, persistence
from taskfn.local.identities import acting_as
from taskfn.local.stack import LocalStack
from tests.e2e.conftest import Client

CODE = '''
def handler(event, context):
    context.set_progress(50)
    print("got", event["body"])
    if event["body"].get("big"):
        return {"big": "x" * 300_000}
    return {"got": event["body"], "q": event["query"]}
'''


def zip_of(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", text)
    return buffer.getvalue()


def started(data: Path, **options) -> LocalStack:
    return LocalStack(port=0, access_log=False, data_dir=data, **options).start()


def finished_job(user: Client, group: str, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        job = user.request("GET", f"/tasks/{group}/jobs/{job_id}").json()["job"]
        status = job["executions"][0]["status"] if job["executions"] else "none"
        if status not in ("enqueued", "pulling", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def execution_of(user: Client, group: str, job_id: str) -> dict:
    job = user.request("GET", f"/tasks/{group}/jobs/{job_id}").json()["job"]
    return job["executions"][0] if job["executions"] else {"status": "none"}


def task_events() -> int:
    """Task events kept in the table (the events function's writes from the stream)."""
    table = boto3.client("dynamodb")
    count, start = 0, None
    while True:
        page = table.scan(TableName="taskfn-local-table", Select="COUNT",
                          FilterExpression="begins_with(PK, :e)",
                          ExpressionAttributeValues={":e": {"S": "EVENTS#"}},
                          **({"ExclusiveStartKey": start} if start else {}))
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


MOTO_FIRST_SEQUENCE = 1100000000017454423009  # where moto starts a new stream's shard


def stream_start() -> int:
    """The first sequence number the table's stream still holds."""
    streams = boto3.client("dynamodbstreams")
    arn = boto3.client("dynamodb").describe_table(
        TableName="taskfn-local-table")["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return int(shards[0]["SequenceNumberRange"]["StartingSequenceNumber"])


def settled(count, quiet_s: float = 3.0, timeout: float = 60) -> int:
    """`count()` once it has not changed for `quiet_s` (the stream's consumers are idle)."""
    deadline = time.monotonic() + timeout
    value, since = count(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "never settled"
        time.sleep(0.5)
        if (now := count()) != value:
            value, since = now, time.monotonic()
    return value


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_clean_stop_and_start_keep_every_record_and_the_tokens(tmp_path: Path):
    data = tmp_path / "data"
    stack = started(data)
    try:
        assert stack.admin_token_generated and stack.admin_token_kept == data / "admin-token"
        generated_admin = stack.admin_token
        admin = Client(stack.url, generated_admin)
        token = admin.request("POST", "/v1/tokens", {"user": "keeper", "scope": "user"})
        user = Client(stack.url, token.json()["token"])
        function_id = user.request("POST", "/v1/function", {"name": "kept", "lang": "PY"}
                                   ).json()["id"]
        build = user.request("POST", f"/v1/build/{function_id}", zip_of(CODE),
                             content_type="application/octet-stream").json()["id"]
        tasks = [user.request("POST", f"/v1/task/{function_id}?n={n}", body).json()["id"]
                 for n, body in enumerate([{"a": 1}, {"b": 2}, {"big": True}])]
        for task_id in tasks:
            assert user.wait_result(task_id).status == 200
        schedule = user.request("POST", "/v1/scheduled", {
            "functionId": function_id, "cron": "* * * * *", "timezone": "Europe/Berlin"})
        assert schedule.status == 201, schedule
        schedule_id = schedule.json()["id"]
        job = user.request("POST", "/tasks/kept-group", {"image": "alpine",
                                                         "command": "echo kept"}).json()
        assert finished_job(user, "kept-group", job["jobId"])["executions"][0]["status"] \
            == "done"
        paths = ([f"/v1/function/{function_id}", f"/v1/build/{build}", "/v1/task/list",
                  f"/v1/scheduled/{schedule_id}", "/tasks/kept-group",
                  f"/tasks/kept-group/jobs/{job['jobId']}",
                  f"/tasks/kept-group/jobs/{job['jobId']}/stdout"]
                 + [f"/v1/task/{t}" for t in tasks] + [f"/v1/task/{t}/result" for t in tasks]
                 + [f"/v1/task/{t}/logs" for t in tasks])
        before = {path: user.request("GET", path) for path in paths}
        assert all(answer.status == 200 for answer in before.values()), before
        old_url = stack.url.encode()
        wait_for(lambda: task_events() > 0)
        events = settled(task_events)  # the events function has caught up with the stream
    finally:
        stack.stop()

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()} == {
        "admin-token": 0o600, "lock": 0o600, "moto.pickle": 0o600}

    stack = started(data)
    try:
        assert stack.admin_token == generated_admin and not stack.admin_token_generated
        # IAM is enforced on the kept data as before: a function's fresh role is held to
        # its policies (none of them names the stack's own tables), unsigned calls refused.
        with acting_as("GetTaskFunction"), pytest.raises(ClientError) as denied:
            aws.client("dynamodb").put_item(TableName="taskfn-local-stream-positions",
                                            Item={"id": {"S": "EventsFunction"}})
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(stack.moto_endpoint + "/taskfn-local-bucket", timeout=10)
        assert unsigned.value.code == 403
        user = Client(stack.url, user.token)  # the same user token, at the new port
        for path, answer in before.items():
            again = user.request("GET", path)  # fastlane's answers hold absolute URLs
            assert (again.status, again.body) == (
                answer.status, answer.body.replace(old_url, stack.url.encode())), path
        # The streams go on from where they were: nothing is lost, and they are not read again
        # from their start (on a loaded machine the last records before the stop may come
        # again: a CI run saw 9 events for 7, so exactly-once is not claimed).
        time.sleep(2)
        assert events <= task_events() < 2 * events
        # And it works on: a new task runs, the schedule fires.
        new = user.request("POST", f"/v1/task/{function_id}", {"c": 3}).json()["id"]
        assert user.wait_result(new).json() == {"got": {"c": 3}, "q": {}}
        fired = stack.scheduler.tick(datetime.now(UTC) + timedelta(minutes=1, seconds=1))
        assert [event["scheduleId"] for event in fired] == [schedule_id]
        # The snapshots drop the stream records every mapping has read (else moto's stream,
        # which keeps every record, would be most of the data).
        assert stream_start() > MOTO_FIRST_SEQUENCE
        # A job still running at a clean stop is stopped as ECS stops one (SIGTERM: 143)
        # before moto stops, and ends by its rules (no retries: failed); it is not left running.
        sleeper = user.request("POST", "/tasks/stopped-group", {"image": "alpine",
                                                               "command": "sleep 120"}).json()
        wait_for(lambda: execution_of(user, "stopped-group", sleeper["jobId"])["status"]
                 == "running", 60)
        taken = stack.snapshot()
        assert taken.size > 300_000
        print(f"\nsnapshot: requests held {taken.seconds * 1000:.1f} ms, written in "
              f"{taken.written_s * 1000:.1f} ms, {taken.size} bytes, "
              f"{taken.trimmed} stream records trimmed")
    finally:
        stack.stop()

    # A given admin token becomes the directory's: kept, and the one kept before revoked.
    stack = started(data, admin_token="tfn_given-admin-token-0123456789")
    try:
        assert (data / "admin-token").read_text().strip() == "tfn_given-admin-token-0123456789"
        assert Client(stack.url, generated_admin).request("GET", "/v1/task/list").status == 401
        given = Client(stack.url, "tfn_given-admin-token-0123456789")
        assert given.request("POST", "/v1/tokens", {"user": "x", "scope": "user"}).status == 201
        assert Client(stack.url, user.token).request("GET", "/v1/task/list").status == 200
        stopped = execution_of(Client(stack.url, user.token), "stopped-group", sleeper["jobId"])
        assert (stopped["status"], stopped["exitCode"]) == ("failed", 143), stopped
    finally:
        stack.stop()


@pytest.mark.slow
def test_a_second_stack_on_a_directory_in_use_is_refused_and_the_first_goes_on(
        tmp_path: Path):
    data = tmp_path / "data"
    first = started(data)
    try:
        admin = Client(first.url, first.admin_token)
        assert admin.request("POST", "/v1/tokens", {"user": "u", "scope": "user"}).status == 201
        with pytest.raises(datadir.InUse) as refused:
            LocalStack(port=0, access_log=False, data_dir=data).start()
        assert str(refused.value) == (
            f"{data} is in use by another taskfn local (process {first._moto.process.pid}): "
            "stop it first, or give this one another --data directory (or --memory)")
        assert admin.request("GET", "/v1/task/list").status == 200  # untouched
    finally:
        first.stop()
    again = started(data)  # the lock went with the first stack
    again.stop()


def test_the_lock_waits_for_a_stack_writing_its_last_snapshot_only(tmp_path: Path):
    holder = ("import sys, time; from pathlib import Path; from taskfn.local import datadir; "
              "d = Path(sys.argv[1]); datadir.lock(d); print('locked', flush=True); "
              "sys.stdin.readline(); datadir.stopping(d); print('stopping', flush=True); "
              "time.sleep(1)")
    other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline() == "locked\n"
        with pytest.raises(datadir.InUse, match="in use by another taskfn local"):
            datadir.lock(tmp_path, wait_s=60)  # refused at once: the holder runs on
        assert other.poll() is None
        other.stdin.write("stop\n")
        other.stdin.flush()
        assert other.stdout.readline() == "stopping\n"
        datadir.lock(tmp_path, wait_s=60)  # waits for its end
        assert other.poll() is not None
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_in_memory_nothing_is_written_to_disk(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with LocalStack(port=0, access_log=False) as stack:
        assert "--data" not in stack._moto.process.args
        admin = Client(stack.url, stack.admin_token)
        assert admin.request("POST", "/v1/tokens", {"user": "u", "scope": "user"}).status == 201
        assert stack.snapshot() is None  # nowhere to keep it
    assert list(tmp_path.iterdir()) == []


def test_the_gate_holds_new_requests_while_a_snapshot_is_taken_and_lets_long_polls_by():
    gate = persistence.Gate()
    order: list[str] = []
    in_request, waiting = threading.Event(), threading.Event()

    def long_poll() -> None:
        with gate.request(), gate.request():  # re-entrant
            in_request.set()
            with gate.released():
                waiting.wait(5)
            order.append("poll back")

    poller = threading.Thread(target=long_poll)
    poller.start()
    in_request.wait(5)
    with gate.closed():  # not held up by the waiting poll
        late = threading.Thread(target=lambda: [gate.request().__enter__(),
                                                order.append("late request")])
        late.start()
        waiting.set()
        time.sleep(0.2)
        order.append("snapshot")
    poller.join(5)
    late.join(5)
    assert order[0] == "snapshot" and sorted(order[1:]) == ["late request", "poll back"]


def test_locks_conditions_and_events_pickle_as_new_ones():
    state = {"lock": threading.Lock(), "rlock": threading.RLock(),
             "condition": threading.Condition(), "event": threading.Event(), "n": 1}
    state["lock"].acquire()
    buffer = io.BytesIO()
    persistence._Pickler(buffer).dump(state)
    back = pickle.loads(buffer.getvalue())
    assert back["n"] == 1 and back["lock"].acquire(blocking=False)
    assert isinstance(back["condition"], threading.Condition)


@pytest.mark.parametrize(("environ", "write"), [
    ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.PutItem"}, True),
    ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query"}, False),
    ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, False),
    ({"HTTP_X_AMZ_TARGET": "AmazonSQS.DeleteMessageBatch"}, True),
    ({"REQUEST_METHOD": "GET"}, False),
    ({"REQUEST_METHOD": "PUT"}, True),
])
def test_what_counts_as_a_write(environ: dict, write: bool):
    assert persistence.is_write(environ) is write


def test_a_snapshot_is_replaced_atomically_and_private(tmp_path: Path):
    target = tmp_path / "file"
    persistence.write_private(target, b"one")
    persistence.write_private(target, json.dumps({"two": 2}).encode())
    assert json.loads(target.read_text()) == {"two": 2}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


class _Streams:
    """A stream of one shard with records 1..n, whose iterators can be made to fail."""

    def __init__(self, n: int) -> None:
        self.n, self.failing, self.asked = n, False, []

    def describe_stream(self, StreamArn):  # boto3's names
        return {"StreamDescription": {"Shards": [{"ShardId": "s"}]}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType,
                           SequenceNumber=None):
        self.asked.append((ShardIteratorType, SequenceNumber))
        start = 1 if ShardIteratorType == "TRIM_HORIZON" else int(SequenceNumber) + 1
        return {"ShardIterator": str(start)}

    def get_records(self, ShardIterator, Limit):
        if self.failing:
            raise RuntimeError("expired iterator")
        start = int(ShardIterator)
        numbers = range(start, min(self.n, start + 1) + 1)  # two a page
        return {"NextShardIterator": str(start + len(numbers)),
                "Records": [{"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(i)}}
                            for i in numbers]}


def test_a_stream_is_read_on_from_its_kept_position_and_found_again_when_its_iterator_fails():
    from taskfn.local.pollers import StreamShards

    client = _Streams(5)
    shards = StreamShards(client, "arn:stream", positions={"s": "2"})
    shards.find()
    pages = shards.read()
    first = next(pages)
    assert [r["dynamodb"]["SequenceNumber"] for r in first] == ["3", "4"]
    assert shards.positions == {"s": "2"}  # not read until the next page is asked for
    list(pages)
    assert shards.positions == {"s": "4"}
    client.failing = True
    with pytest.raises(RuntimeError):
        list(shards.read())
    assert shards.lost and shards.iterators == {}
    client.failing = False
    shards.find()
    assert client.asked[-1] == ("AFTER_SEQUENCE_NUMBER", "4")
    assert [r["dynamodb"]["SequenceNumber"] for page in shards.read() for r in page] == ["5"]


def test_shard_iterators_expire_as_in_aws_oldest_first():
    from types import SimpleNamespace

    from taskfn.local import streamiterators

    now = 10_000.0
    made = {f"i{n}": SimpleNamespace(taskfn_created=now - age)
            for n, age in enumerate([2000, 901, 899, 10])}
    backend = SimpleNamespace(shard_iterators=dict(made))
    assert streamiterators.prune(backend, now) == 2
    assert list(backend.shard_iterators) == ["i2", "i3"]
    assert streamiterators.prune(backend, now + 10) == 0  # not again so soon
    assert streamiterators.prune(backend, now + 1000) == 2
