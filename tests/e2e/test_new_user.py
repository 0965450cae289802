"""A new user's first session, as README.md's quick start tells it: `taskfn local` keeping its
data in `.taskfn/` of the directory it runs in, `taskfn login` with the admin token it
printed, `taskfn fn deploy examples/hello`, `taskfn run --wait`, `taskfn logs -f`, the console
page; then a stop and a start, after which everything is still there and the token still
works."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .test_cli import HELLO, TASKFN

pytestmark = pytest.mark.e2e


@contextmanager
def taskfn_local(where: Path) -> Iterator[tuple[str, list[str]]]:
    """`taskfn local --port 0` started in `where`, as `make run` starts it (no --data, no
    --memory: the default); its URL and the lines it printed before serving."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "TABLE_", "BUCKET_", "TASKFN_"))}
    process = subprocess.Popen([str(TASKFN), "local", "--port", "0"], cwd=where, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed: list[str] = []
    try:
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("taskfn local: serving "):
                break
        url = printed[-1].split()[-1]
        for line in process.stdout:  # the lines about the token come after it serves
            printed.append(line.rstrip("\n"))
            if line.startswith(("admin token:", "taskfn local: the admin token is kept")):
                break
        threading.Thread(target=collections.deque, args=(process.stdout, 0),
                         daemon=True).start()
        yield url, printed
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as the user stops it
        assert process.wait(timeout=120) == 0


def run(where: Path, config: Path, *args: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFN_")}
    env.update(TASKFN_CONFIG=str(config), COLUMNS="200")
    return subprocess.run([str(TASKFN), *args], capture_output=True, text=True, input=stdin,
                          timeout=120, cwd=where, env=env)


def test_a_new_user_s_first_session_is_all_there_after_a_restart(tmp_path: Path):
    home, config = tmp_path / "project", tmp_path / "config.json"
    home.mkdir()
    with taskfn_local(home) as (url, printed):
        (token,) = [line.split()[-1] for line in printed if line.startswith("admin token:")]
        login = run(home, config, "login", "--api", url, "--token", "-", stdin=token + "\n")
        assert login.returncode == 0, login
        assert oct(config.stat().st_mode & 0o777) == "0o600"
        deployed = run(home, config, "fn", "deploy", str(HELLO))
        assert deployed.returncode == 0 and "SUCCESS" in deployed.stdout, deployed
        ran = run(home, config, "run", "hello", "--wait", "--data", '{"name": "Ada"}',
                  "--query", "steps=2", "--query", "pause=0.5")
        assert ran.returncode == 0, ran
        assert json.loads(ran.stdout)["message"] == "hello Ada"
        logs = run(home, config, "logs", "-f")
        assert logs.returncode == 0 and logs.stdout.strip(), logs
        with urllib.request.urlopen(f"{url}/console") as page:  # the console's own page
            assert page.status == 200 and b"<script" in page.read()
        tasks_before = json.loads(run(home, config, "tasks", "ls", "--json").stdout)
    assert (home / ".taskfn").is_dir()  # the default data directory, where it ran

    with taskfn_local(home) as (url_again, printed):
        assert not any(line.startswith("admin token:") for line in printed)  # kept, not new
        if url_again != url:  # another free port: the saved API URL moves with it
            assert run(home, config, "login", "--api", url_again, "--token", "-",
                       stdin=token + "\n").returncode == 0
        functions = json.loads(run(home, config, "fn", "ls", "--json").stdout)
        assert [f["name"] for f in functions] == ["hello"]
        tasks_after = json.loads(run(home, config, "tasks", "ls", "--json").stdout)
        assert [t["id"] for t in tasks_after] == [t["id"] for t in tasks_before]
        again = run(home, config, "run", "hello", "--wait", "--data", '{"name": "Bo"}',
                    "--query", "pause=0")
        assert again.returncode == 0, again
        assert json.loads(again.stdout)["message"] == "hello Bo"
