"""`taskfn local` as a process (issue 9): SIGTERM stops it as Ctrl-C does, children and all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ADMIN_TOKEN, ROOT

pytestmark = pytest.mark.e2e


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# SIGINT (Ctrl-C) the same way in `make slow`; test_new_user.py stops a stack with it too.
@pytest.mark.parametrize("signum", [signal.SIGTERM,
                                    pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_stops_the_stack_and_its_children(signum):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "BUCKET_"))}
    env["TASKFN_ADMIN_TOKEN"] = ADMIN_TOKEN
    process = subprocess.Popen([sys.executable, "-m", "taskfn.cli", "local", "--memory",
                                "--port", "0"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith("taskfn local: serving ")
        spawned = children(process.pid)
        assert spawned  # the moto server at least
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0
        assert not [pid for pid in spawned if alive(pid)]
    finally:
        process.kill()
        process.wait()
