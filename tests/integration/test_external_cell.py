"""The external cell (taskfn.cell) against a real local stack over HTTP: it takes only tasks
whose tags it has, runs them in real child processes, completes them once however many cells
race, heartbeats, and kills a task that was cancelled or that it abandons when stopping."""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskfn.cell import NO_SOURCE_REASON, Cell, CellClient
from taskfn.local.stack import LocalStack

ADMIN = "tfn_external-cell-admin-token-01"


class Api:
    """The Cell API as a user or a cell calls it."""

    def __init__(self, url: str, token: str):
        self.client = CellClient(url, token)

    def call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.call(route, body)

    def task(self, guid: str) -> dict[str, Any]:
        return self.call("get_by_task_guid.r3", {"task_guid": guid})["task"]


def token(url: str, user: str, scope: str) -> str:
    request = urllib.request.Request(
        f"{url}/v1/tokens", data=json.dumps({"user": user, "scope": scope}).encode(),
        method="POST", headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["token"]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, admin_token=ADMIN, access_log=False) as running:
        yield running


@pytest.fixture(scope="module")
def user(stack: LocalStack) -> Api:
    return Api(stack.url, token(stack.url, "alice", "user"))


def register_node(url: str, hash_: str, bearer: str = ADMIN) -> str:
    """A node registered (by an admin: shared, it runs every owner's tasks): its cell token."""
    request = urllib.request.Request(f"{url}/v1/node/{hash_}", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["token"]


@pytest.fixture(scope="module")
def cell_token(stack: LocalStack) -> Callable[[str], str]:
    """The cell token of the node `cell_id` (registered on first use)."""
    tokens: dict[str, str] = {}

    def of(cell_id: str) -> str:
        if cell_id not in tokens:
            tokens[cell_id] = register_node(stack.url, cell_id)
        return tokens[cell_id]

    return of


@pytest.fixture
def domain() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


def make_cell(stack: LocalStack, cell_token: Callable[[str], str], domain: str,
              cell_id: str = "cell-a", tags: str = "gpu", **options: float) -> Cell:
    options.setdefault("heartbeat_s", 0.2)
    return Cell(CellClient(stack.url, cell_token(cell_id)), cell_id, frozenset(tags.split(",")),
                domain, **options)


def desire(user: Api, domain: str, source: str | None = None, *, tags: tuple[str, ...] = ("gpu",),
           **definition: Any) -> str:
    guid = f"it-{uuid.uuid4().hex}"
    if source is not None:
        definition["source"] = textwrap.dedent(source)
    answer = user.call("desire.r2", {"task_guid": guid, "domain": domain, "task_definition": {
        "placement_tags": list(tags), **definition}})
    assert answer == {"error": None}
    return guid


def wait_for(check, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


SLEEPER = """
    import os, time

    def handler(event, context):
        with open(event["body"]["pid_file"], "w") as out:
            out.write(str(os.getpid()))
        time.sleep(60)
        return "woke up"
"""


def test_a_tagged_task_runs_in_a_child_process_and_completes_with_its_result(
        stack, user, cell_token, domain):
    guid = desire(user, domain, """
        import os

        def handler(event, context):
            return {"twice": event["body"]["n"] * 2, "pid": os.getpid(), "task": context.task_id}
    """, input={"n": 21})
    cell = make_cell(stack, cell_token, domain)
    assert cell.run_once() == (guid, "succeeded")
    task = user.task(guid)
    assert (task["state"], task["failed"], task["cell_id"]) == ("Completed", False, "")
    result = json.loads(task["result"])
    assert (result["twice"], result["task"]) == (42, guid)
    assert result["pid"] != os.getpid()
    assert cell.run_once() is None  # nothing left


def test_a_failing_task_or_one_without_source_completes_failed_with_the_reason(
        stack, user, cell_token, domain):
    broken = desire(user, domain, "def handler(event, context):\n    raise ValueError('no')\n")
    nothing = desire(user, domain, annotation="no source")
    cell = make_cell(stack, cell_token, domain)
    assert cell.run_once() == (broken, "failed")
    assert cell.run_once() == (nothing, "failed")
    failed = user.task(broken)
    assert (failed["state"], failed["failed"], failed["result"]) == ("Completed", True, "")
    assert failed["failure_reason"] == "ValueError: no"
    assert user.task(nothing)["failure_reason"] == NO_SOURCE_REASON


def test_a_task_with_a_tag_the_cell_lacks_is_not_taken(stack, user, cell_token, domain):
    guid = desire(user, domain, "def handler(event, context):\n    return 1\n",
                  tags=("gpu", "arm"))
    assert make_cell(stack, cell_token, domain, tags="gpu,ssd").run_once() is None
    assert user.task(guid)["state"] == "Pending"
    assert make_cell(stack, cell_token, domain, tags="gpu,arm").run_once() == (guid, "succeeded")


def test_racing_cells_run_each_task_exactly_once(stack, user, cell_token, domain, drop_box):
    """Every run appends its task's guid to one file: two lines for one guid would be a task
    run twice."""
    runs = drop_box / "runs.txt"
    runs.touch()
    runs.chmod(0o666)  # sandboxes of other users append to it too
    source = f"""
        import time

        def handler(event, context):
            with open({str(runs)!r}, "a") as out:
                out.write(context.task_id + "\\n")
            time.sleep(0.1)
            return context.task_id
    """
    guids = [desire(user, domain, source) for _ in range(6)]
    outcomes: dict[str, list[tuple[str, str]]] = {"cell-a": [], "cell-b": []}
    barrier = threading.Barrier(2)

    def work(cell_id: str) -> None:
        cell = make_cell(stack, cell_token, domain, cell_id)
        barrier.wait()
        while (ran := cell.run_once()) is not None:
            outcomes[cell_id].append(ran)

    threads = [threading.Thread(target=work, args=(name,)) for name in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(runs.read_text().split()) == sorted(guids)
    ran = outcomes["cell-a"] + outcomes["cell-b"]
    assert sorted(guid for guid, _ in ran) == sorted(guids)
    assert {outcome for _, outcome in ran} == {"succeeded"}
    for guid in guids:
        task = user.task(guid)
        assert (task["state"], task["result"]) == ("Completed", guid)


def test_cancelling_a_running_task_kills_it_on_its_cell_and_it_is_not_completed(
        stack, user, cell_token, domain, drop_box):
    pid_file = drop_box / "pid"
    guid = desire(user, domain, SLEEPER, input={"pid_file": str(pid_file)})
    cell = make_cell(stack, cell_token, domain)
    outcome: list[tuple[str, str] | None] = []
    runner = threading.Thread(target=lambda: outcome.append(cell.run_once()))
    runner.start()
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text())
    pid = int(pid_file.read_text())
    assert alive(pid)
    cancelled_at = time.monotonic()
    assert user.call("cancel", {"task_guid": guid}) == {"error": None}
    runner.join(10)
    assert outcome == [(guid, "cancelled")]
    assert time.monotonic() - cancelled_at < 3  # a few 0.2 s heartbeats
    assert wait_for(lambda: not alive(pid), 5)
    task = user.task(guid)
    assert (task["state"], task["failed"], task["failure_reason"], task["result"]) == (
        "Completed", True, "task was cancelled", "")


def test_a_stopping_cell_abandons_its_task_after_heartbeating_it(
        stack, user, cell_token, domain, drop_box):
    """While the task runs its updated_at moves (heartbeats); on stop the child is killed and
    the task stays Running on the cell, for convergence to fail once the heartbeats stop."""
    pid_file = drop_box / "pid"
    guid = desire(user, domain, SLEEPER, input={"pid_file": str(pid_file)})
    cell = make_cell(stack, cell_token, domain, "cell-stopping")
    stop = threading.Event()
    runner = threading.Thread(target=cell.run_forever, args=(stop,))
    runner.start()
    try:
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text())
        started = user.task(guid)
        assert (started["state"], started["cell_id"]) == ("Running", "cell-stopping")
        assert wait_for(lambda: user.task(guid)["updated_at"] > started["updated_at"], 5)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert wait_for(lambda: not alive(int(pid_file.read_text())), 5)
    task = user.task(guid)
    assert (task["state"], task["cell_id"]) == ("Running", "cell-stopping")
    # The platform still sees it as the cell's: no other cell may start it.
    other = make_cell(stack, cell_token, domain, "cell-other")
    assert other.run_once() is None
