"""The local stack as a user runs it: `taskfn local` in a child process, over real HTTP."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskfn.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "tfn_e2e-admin-token-0123456789"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, url: str, token: str | None = None, pid: int = 0):
        self.url = url
        self.token = token
        self.pid = pid  # the `taskfn local` process

    def as_user(self, token: str) -> Client:
        return Client(self.url, token, self.pid)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict | None = None,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data: bytes | None
        if isinstance(body, dict):
            data, content_type = json.dumps(body).encode(), content_type or "application/json"
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def wait_result(self, task_id: str, timeout: float = 60) -> Answer:
        """Poll the result route until the task has finished (404 until then)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.request("GET", f"/v1/task/{task_id}/result")
            if answer.status != 404 or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)


@contextlib.contextmanager
def in_process_stack(admin_token: str, prefix: str,
                     settings: dict[str, str]) -> Iterator[LocalStack]:
    """A local stack in this process (so a test can reach its parts), with settings given
    through the environment as in AWS."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        with LocalStack(port=0, admin_token=admin_token, access_log=False,
                        prefix=prefix) as local:
            yield local


@pytest.fixture(scope="session")
def stack() -> Iterator[Client]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "BUCKET_"))}
    env["TASKFN_ADMIN_TOKEN"] = ADMIN_TOKEN  # not on the command line, which anyone can read
    process = subprocess.Popen(
        [sys.executable, "-m", "taskfn.cli", "local", "--memory", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        # E2E_STACK_LOG=<file> keeps the stack's log, to see why a run went wrong
        stderr=open(os.environ["E2E_STACK_LOG"], "w") if os.environ.get("E2E_STACK_LOG")  # noqa: SIM115
        else subprocess.DEVNULL,
        text=True,
    )
    line = process.stdout.readline()
    assert line.startswith("taskfn local: serving "), line
    url = line.split()[-1]
    # The handlers log to stdout (Powertools): read it to the end, or the stack blocks on a
    # full pipe once 64 KiB of log lines wait there.
    threading.Thread(target=collections.deque, args=(process.stdout, 0), daemon=True).start()
    try:
        yield Client(url, ADMIN_TOKEN, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def user(stack: Client) -> Client:
    answer = stack.request("POST", "/v1/tokens", {"user": "alice", "scope": "user"})
    assert answer.status == 201, answer
    return stack.as_user(answer.json()["token"])
