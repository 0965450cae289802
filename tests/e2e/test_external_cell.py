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
from pathlib import Path

import pytest

from tests import hostile

from .conftest import ROOT, Client
from .test_cell_api import bbs

pytestmark = pytest.mark.e2e

TASKFN = Path(sys.executable).with_name("taskfn")  # the venv's console script


def test_taskfn_cell_runs_a_tagged_task_to_completion(stack: Client, user: Client):
    answer = stack.request("POST", "/v1/tokens", {"user": "e2e-cell", "scope": "cell"})
    assert answer.status == 201, answer
    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    source = "def handler(event, context):\n    return f\"hello {event['body']['name']}\"\n"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e"], "source": source, "input": {"name": "Ada"}}}) == {"error": None}
    cell = subprocess.Popen(
        [str(TASKFN), "cell", "--api", stack.url,
         "--id", "e2e-cell-1", "--tags", "e2e,spare", "--domain", domain, "--poll", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKFN_CELL_TOKEN": answer.json()["token"]})
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
    assert (task["state"], task["failed"], task["result"]) == ("Completed", False, "hello Ada")
    assert cell.returncode == 0, errors
    assert out.startswith("taskfn cell e2e-cell-1: domain ")
    assert f"task {task_guid} succeeded" in errors
    assert "Traceback" not in errors


def test_a_failing_task_with_a_retry_runs_twice_on_the_cell_after_its_back_off(
        stack: Client, user: Client):
    answer = stack.request("POST", "/v1/tokens", {"user": "e2e-retry-cell", "scope": "cell"})
    assert answer.status == 201, answer
    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    source = "def handler(event, context):\n    raise RuntimeError('flaky disk')\n"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e"], "source": source, "retries": 1}}) == {"error": None}
    cell = subprocess.Popen(
        [str(TASKFN), "cell", "--api", stack.url,
         "--id", "e2e-retry-cell", "--tags", "e2e", "--domain", domain, "--poll", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKFN_CELL_TOKEN": answer.json()["token"]})
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


def _run_on_a_cell(stack: Client, user: Client, cell_id: str, source: str) -> dict:
    """Desire a tagged task with this source, run `taskfn cell` until it completes, stop it."""
    answer = stack.request("POST", "/v1/tokens", {"user": cell_id, "scope": "cell"})
    assert answer.status == 201, answer
    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e"], "source": source}}) == {"error": None}
    cell = subprocess.Popen(
        [str(TASKFN), "cell", "--api", stack.url,
         "--id", cell_id, "--tags", "e2e", "--domain", domain, "--poll", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TASKFN_CELL_TOKEN": answer.json()["token"]})
    try:
        deadline = time.monotonic() + 30
        while True:
            task = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
            if task["state"] == "Completed" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        cell.send_signal(signal.SIGTERM)
        _, errors = cell.communicate(timeout=20)
    assert (task["state"], task["failed"]) == ("Completed", False), errors
    return {**task, "cell_pid": cell.pid, "cell_token": answer.json()["token"]}


def test_a_daemon_started_by_a_task_on_a_cell_is_gone_when_the_task_ends(stack, user):
    task = _run_on_a_cell(stack, user, "e2e-daemon-cell", hostile.DAEMON)
    assert hostile.wait_dead(json.loads(task["result"])["daemon"])


def test_a_task_on_a_cell_cannot_read_the_cells_token(stack: Client, user: Client):
    """The cell's token gives the Cell API for every task; its code must not find it in the
    cell's environment, memory or command line."""
    task = _run_on_a_cell(stack, user, "e2e-attacked-cell", hostile.READ_PARENT)
    seen = json.loads(task["result"])
    assert seen["parent"] == task["cell_pid"]
    for attempt in ("environ", "mem", "ptrace"):
        assert hostile.failed(seen[attempt]), seen[attempt]
    assert task["cell_token"] not in task["result"]
