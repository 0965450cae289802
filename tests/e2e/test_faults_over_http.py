"""The faults of issue 4 through the local stack, driven over HTTP: a message delivered again,
a task written but never sent, an executor that dies in the middle of a task (with and without
a retry). The stack runs in this process so a test can break what a crash would break (the
queue, a half-done start); the converger is invoked as its schedule would, with short
intervals set through the environment as in AWS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from taskfn import lifecycle, wiring
from taskfn.local.schedules import build_schedule_event
from taskfn.local.stack import LocalStack
from taskfn.models import TaskRecord, now_ns
from taskfn.stores.queue import encode

from .conftest import Client, in_process_stack

pytestmark = pytest.mark.e2e

ADMIN = "tfn_faults-admin-token-0123456789"
SETTINGS = {"DISPATCH_GRACE_S": "1", "CELL_HEARTBEAT_S": "1", "CELL_TIMEOUT_S": "3"}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    with in_process_stack(ADMIN, "faults", SETTINGS) as stack:
        yield stack


@pytest.fixture(scope="module")
def user(local: LocalStack) -> Client:
    answer = Client(local.url, ADMIN).request("POST", "/v1/tokens",
                                              {"user": "faulty", "scope": "user"})
    assert answer.status == 201, answer
    return Client(local.url, answer.json()["token"])


def function(user: Client, source: str) -> str:
    created = user.request("POST", "/v1/function", {"name": "f", "lang": "PY", "source": source})
    assert created.status == 201, created
    return created.json()["id"]


def converge(local: LocalStack) -> dict:
    """One pass, as the schedule runs it."""
    return local.invoker.invoke("ConvergerFunction", build_schedule_event("ConvergerFunction"))


def bbs_task(local: LocalStack, task_guid: str) -> dict:
    answer = Client(local.url, ADMIN).request("POST", "/v1/tasks/get_by_task_guid.r3",
                                              {"task_guid": task_guid})
    return answer.json()["task"]


def wait_for(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_message_delivered_three_more_times_runs_the_function_once(local, user, drop_box):
    log = drop_box / "runs.txt"
    log.touch()
    log.chmod(0o666)  # sandboxes of other users append to it too
    source = ("def handler(event, context):\n"
              "    with open(event['body']['log'], 'a') as f:\n"
              "        f.write('ran\\n')\n"
              "    return 'ok'\n")
    task = user.request("POST", f"/v1/task/{function(user, source)}", {"log": str(log)})
    assert task.status == 201, task
    task_id = task.json()["id"]
    queue = wiring.task_queue()
    for _ in range(3):
        boto3.client("sqs").send_message(QueueUrl=queue.url, MessageBody=encode(task_id))
    assert user.wait_result(task_id).status == 200

    def drained() -> bool:
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])
        return all(v == "0" for v in attributes["Attributes"].values())

    assert wait_for(drained), "the duplicates were not consumed"
    assert log.read_text() == "ran\n"


def _written_not_sent(user: Client, local: LocalStack, source: str, **fields) -> str:
    """A task as a create leaves it when the process dies between the write and the send."""
    function_id = function(user, source)
    record = wiring.functions().get(function_id)
    now = now_ns()
    task = TaskRecord(task_guid=uuid.uuid4().hex, owner="faulty", created_at=now,
                      updated_at=now, input={"body": None, "query": {}}, **record.run_fields(),
                      **fields)
    assert wiring.tasks().put_new(task)
    return task.task_guid


def test_a_task_written_but_never_sent_runs_once_the_converger_dispatches_it(local, user):
    task_id = _written_not_sent(user, local, "def handler(event, context):\n    return 41 + 1\n")
    time.sleep(1.2)  # past the dispatch grace (1 s here)
    assert user.request("GET", f"/v1/task/{task_id}/result").status == 404  # still Pending
    assert converge(local)["dispatched"] >= 1
    result = user.wait_result(task_id)
    assert (result.status, result.body) == (200, b"42")


def test_an_executor_that_died_mid_task_leaves_a_task_the_converger_fails(local, user):
    task_id = _written_not_sent(user, local, "def handler(event, context):\n    return 1\n")
    wiring.tasks().apply(task_id, lifecycle.start("executor-died", now_ns()))
    time.sleep(3.2)  # past the cell timeout (3 s here): no heartbeat came
    assert converge(local)["cell_lost"] >= 1
    task = bbs_task(local, task_id)
    assert (task["state"], task["failed"], task["failure_reason"]) == (
        "Completed", True, lifecycle.CELL_LOST_REASON)
    answer = user.request("GET", f"/v1/task/{task_id}")
    assert answer.status == 200 and answer.json()["finished"] != "0"


def test_with_a_retry_the_task_of_a_dead_executor_runs_again_and_succeeds(local, user):
    task_id = _written_not_sent(user, local, "def handler(event, context):\n    return 'again'\n",
                                retries=1)
    wiring.tasks().apply(task_id, lifecycle.start("executor-died", now_ns()))
    time.sleep(3.2)
    assert converge(local)["retried"] >= 1
    waiting = bbs_task(local, task_id)
    assert (waiting["state"], len(waiting["attempts"])) == ("Pending", 1)
    # Sent again with the back-off (2 s) as its delay: the built-in executor then runs it.
    result = user.wait_result(task_id)
    assert (result.status, result.body) == (200, b"again")
    done = bbs_task(local, task_id)
    assert done["attempts"][0]["cell_id"] == "executor-died"
    assert done["failed"] is False

