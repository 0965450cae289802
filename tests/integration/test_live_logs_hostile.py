"""The live logs' pump against hostile output, late subscribers, CloudWatch's empty pages and
slow rounds, on moto: each test the attack, failing when it works."""

from __future__ import annotations

import json
import threading
import time

import pytest

import tests.integration.test_live_logs as base
from taskfn.services import livelogs
from taskfn.services.livelogs import HANDOVER_MS
from taskfn.services.tokens import TokenService


@pytest.fixture
def token(backend) -> str:
    return TokenService.from_env().create("alice", "user").token


def test_late_subscriber_to_more_than_8mb_gets_everything_and_is_closed(token):
    """A connection that joins after the pump copied > CACHE_BYTES must still get the whole
    output and be closed wsdone once the job ends."""
    job = base.Job(token)
    connections = base.Connections()
    line = "x" * 30_000
    logs = base.live(connections)
    logs.connect(job.connect_event("early"))
    (message,) = base.pump_messages()

    def big() -> None:
        for n in range(10):  # 300 events of 30 KB: 9 MB
            job.print(*[f"{n:02d}{i:03d}" + line for i in range(30)])

    def late() -> None:
        logs.connect(job.connect_event("late", this_execution=True))
        base.pump_messages()

    rounds = [0]

    def remaining() -> int:
        rounds[0] += 1
        return 900_000 if rounds[0] < 80 else HANDOVER_MS - 1

    logs.sleep = base.script(big, lambda: None, lambda: None, late, lambda: None,
                             lambda: job.finish("done"))
    outcome = logs.pump(json.dumps(message), remaining)
    expected = connections.text("early")
    assert len(expected) > 9_000_000
    assert connections.text("late") == expected, (
        f"outcome={outcome}; late got {len(connections.text('late'))} of {len(expected)}")
    assert connections.closed.get("late") == (1000, "wsdone"), outcome


class LaggingLogs:
    """CloudWatch Logs' documented GetLogEvents behaviour: a page may be empty (with a new
    forward token) while more events follow; the end is the same token given back."""

    def __init__(self, real, pages_before: int):
        self.real = real
        self.exceptions = real.exceptions
        self.empty_left = pages_before
        self.armed = False

    def get_log_events(self, **arguments):
        if self.armed and self.empty_left > 0:
            self.empty_left -= 1
            return {"events": [], "nextForwardToken": f"f/gap{self.empty_left}"}
        if arguments.get("nextToken", "").startswith("f/gap"):
            arguments["nextToken"] = self.token
        page = self.real.get_log_events(**arguments)
        self.token = page.get("nextForwardToken")
        return page


def test_empty_pages_with_a_moving_token_do_not_end_the_stream(token):
    job = base.Job(token)
    connections = base.Connections()
    logs = base.live(connections)
    lagging = LaggingLogs(logs.logs, pages_before=2)
    logs.logs = lagging
    job.print("first")
    logs.connect(job.connect_event("conn"))
    (message,) = base.pump_messages()

    def finish() -> None:
        job.print("last-line")
        job.finish("first\nlast-line")
        lagging.armed = True

    logs.sleep = base.script(lambda: None, finish)
    logs.pump(json.dumps(message), base.forever)
    assert connections.text("conn") == "first\nlast-line\n"


def test_a_round_longer_than_the_lease_does_not_send_a_finished_output_twice(
        token, monkeypatch):
    """Scaled model: LEASE_MS 200 ms and 60 ms per post stand for 30 s and a 16 MiB output's
    1,000 posts. A second pump (a bounced message) must not resend what the first sends."""
    monkeypatch.setattr(livelogs, "LEASE_MS", 200)
    job = base.Job(token)
    stdout = "".join(f"{i:06d}\n" for i in range(45_000))  # 315 KB: 10 posts
    job.finish(stdout)

    class Slow(base.Connections):
        def post(self, connection_id, text):
            time.sleep(0.06)
            return super().post(connection_id, text)

    connections = Slow()
    one = base.live(connections)
    two = base.live(connections)
    one.connect(job.connect_event("c1", this_execution=True))
    one.connect(job.connect_event("c2", this_execution=True))
    first, second = base.pump_messages()
    thread = threading.Thread(target=one.pump, args=(json.dumps(first), base.forever))
    thread.start()
    time.sleep(0.35)  # the first pump is still sending c1 its output; its lease ran out
    two.pump(json.dumps(second), base.forever)
    thread.join()
    expected = "EXIT CODE: 0\n" + stdout + "\n-=-\n"
    assert connections.text("c1") == expected, (
        len(connections.text("c1")), len(expected))
    assert connections.text("c2") == expected


def test_a_vanished_connection_to_an_unknown_job_does_not_hold_a_pump_for_long(token):
    """A connection that left before the pump closed it (a client that disconnects at once)
    must not hold a pump (one of the local stack's 4 workers; a Lambda in AWS) sleeping:
    its close is asked again through the queue."""
    job = base.Job(token, running=False)
    connections = base.Connections()
    connections.not_open.add("gone")
    logs = base.live(connections, sleep=lambda _: pytest.fail("the pump slept"))
    logs.connect(job.connect_event("gone", job="6b3f1c1e-3f7a-4e8e-9a53-0f4f5a7b8c9d"))
    (message,) = base.pump_messages()
    assert logs.pump(json.dumps(message), base.forever) == "waiting to close"


def test_a_job_line_that_is_json_with_a_lone_surrogate_does_not_kill_the_pump(token):
    """In AWS (awslogs) the job's own line is the log event's message: a job that prints
    {"log": "\\ud800"} makes record_text return a lone surrogate."""
    job = base.Job(token)
    job.logs.put_log_events(
        logGroupName=job.group, logStreamName=base.log_stream(base.ARN),
        logEvents=[{"timestamp": base.now_ns() // 1_000_000, "message": m}
                   for m in ("before", '{"log": "\\ud800"}', "after")])
    connections = base.Connections()
    logs = base.live(connections, sleep=base.script(lambda: None,
                                                    lambda: job.finish("x")))
    logs.connect(job.connect_event("conn"))
    (message,) = base.pump_messages()
    try:
        outcome = logs.pump(json.dumps(message), base.forever)
    except Exception as error:  # the SQS message comes back in 960 s, and crashes again
        pytest.fail(f"the pump raised {error!r}; conn got {connections.text('conn')!r}, "
                    f"closed={connections.closed}")
    assert connections.closed.get("conn") == (1000, "wsdone"), outcome
