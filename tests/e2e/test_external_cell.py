"""`taskfn cell` as a user runs it: a separate process that reaches `taskfn local` only over
HTTP, takes a tagged task, runs its source and completes it; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import hostile

from .conftest import ROOT, Client
from .test_cell_api import bbs

pytestmark = pytest.mark.e2e

TASKFN = Path(sys.executable).with_name("taskfn")  # the venv's console script


@dataclass
class CellRun:
    task: dict
    out: str
    errors: str
    returncode: int
    pid: int
    token: str


def run_on_a_cell(stack: Client, user: Client, cell_id: str, definition: dict,
                  tags: str = "e2e") -> CellRun:
    """Desire one tagged task, run `taskfn cell` until it is Completed, stop the cell."""
    answer = user.request("POST", f"/v1/node/{cell_id}", {"description": "an e2e cell"})
    assert answer.status == 201, answer  # the user's own node: it runs only their tasks
    token = answer.json()["token"]
    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e"], **definition}}) == {"error": None}
    cell = subprocess.Popen(
        [str(TASKFN), "cell", "--api", stack.url,
         "--id", cell_id, "--tags", tags, "--domain", domain, "--poll", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKFN_CELL_TOKEN": token})  # not on the command line
    try:
        deadline = time.monotonic() + 30
        while True:
            task = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
            if task["state"] == "Completed" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        cell.send_signal(signal.SIGTERM)
        out, errors = cell.communicate(timeout=20)
    return CellRun(task, out, errors, cell.returncode, cell.pid, token)


def test_taskfn_cell_runs_a_tagged_task_to_completion(stack: Client, user: Client):
    source = "def handler(event, context):\n    return f\"hello {event['body']['name']}\"\n"
    run = run_on_a_cell(stack, user, "e2e-cell-1", {"source": source, "input": {"name": "Ada"}},
                        tags="e2e,spare")
    task = run.task
    assert (task["state"], task["failed"], task["result"]) == ("Completed", False, "hello Ada")
    assert run.returncode == 0, run.errors
    assert run.out.startswith("taskfn cell e2e-cell-1: domain ")
    assert f"task {task['task_guid']} succeeded" in run.errors
    assert "Traceback" not in run.errors


def test_a_failing_task_with_a_retry_runs_twice_on_the_cell_after_its_back_off(
        stack: Client, user: Client, tmp_path: Path):
    """Also `--register`: the cell registers its node with the user's token and keeps the
    cell token (mode 0600) for its next start."""
    token_file = tmp_path / "node.token"
    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    source = "def handler(event, context):\n    raise RuntimeError('flaky disk')\n"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e"], "source": source, "retries": 1}}) == {"error": None}
    cell = subprocess.Popen(
        [str(TASKFN), "cell", "--api", stack.url,
         "--id", "e2e-retry-cell", "--tags", "e2e", "--domain", domain, "--poll", "0.2",
         "--register", "--token-file", str(token_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKFN_CELL_TOKEN": user.token})  # --register: a user token
    states = []
    try:
        deadline = time.monotonic() + 45
        while True:
            task = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
            if not states or states[-1] != task["state"]:
                states.append(task["state"])
            if task["state"] == "Completed" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        cell.send_signal(signal.SIGTERM)
        _, errors = cell.communicate(timeout=20)
    assert (task["state"], task["failed"]) == ("Completed", True), errors
    assert "flaky disk" in task["failure_reason"]
    (first,) = task["attempts"]  # the earlier attempt, kept; the task's fields are the last
    assert first["attempt"] == 1 and "flaky disk" in first["failure_reason"]
    assert first["cell_id"] == "e2e-retry-cell"
    # The second attempt started no earlier than 2 s (2^1) after the first one failed.
    assert task["retry_at"] - first["finished_at"] == 2 * 10**9
    assert errors.count(f"task {task_guid} failed") == 2  # it ran twice on the cell
    assert states[0] == "Pending" and states[-1] == "Completed"
    assert token_file.stat().st_mode & 0o077 == 0  # the cell token, for the owner only
    nodes = user.request("GET", "/v1/node/list").json()
    (node,) = [n for n in nodes if n["hash"] == "e2e-retry-cell"]
    assert node["lastHeartbeat"] and not node["disabled"]  # it heartbeated its node


def test_a_daemon_started_by_a_task_on_a_cell_is_gone_when_the_task_ends(stack, user):
    run = run_on_a_cell(stack, user, "e2e-daemon-cell", {"source": hostile.DAEMON})
    assert not run.task["failed"], run.errors
    assert hostile.wait_dead(json.loads(run.task["result"])["daemon"])


def test_a_task_on_a_cell_cannot_read_the_cells_token(stack: Client, user: Client):
    """The cell's token gives the Cell API for every task; its code must not find it in the
    cell's environment, memory or command line."""
    run = run_on_a_cell(stack, user, "e2e-attacked-cell", {"source": hostile.READ_PARENT})
    assert not run.task["failed"], run.errors
    seen = json.loads(run.task["result"])
    assert seen["parent"] == run.pid
    for attempt in ("environ", "mem", "ptrace"):
        assert hostile.failed(seen[attempt]), seen[attempt]
    assert run.token not in run.task["result"]
