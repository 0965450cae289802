"""The `taskfn` client commands as a user runs them: the venv's console script in a child
process, against `taskfn local` over real HTTP, with a config file of its own."""

from __future__ import annotations

import collections
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ADMIN_TOKEN, ROOT, Client

pytestmark = pytest.mark.e2e

TASKFN = Path(sys.executable).with_name("taskfn")  # the venv's console script
HELLO = ROOT / "examples" / "hello"


@dataclass
class Ran:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """The CLI of one user: TASKFN_API and TASKFN_TOKEN set, a config file of its own."""

    url: str
    token: str
    config: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFN_")}
        env.update(TASKFN_CONFIG=str(self.config), TASKFN_API=self.url,
                   TASKFN_TOKEN=self.token, COLUMNS="200")
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> Ran:
        done = subprocess.run([str(TASKFN), *args], capture_output=True, text=True,
                              input=stdin, timeout=60, cwd=ROOT, env=self.env(**env))
        return Ran(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(TASKFN), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=self.env())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A stack of this module's own, `taskfn local --memory` in an empty directory: the CLI
    is tested on a platform that starts empty, and --memory must leave no data behind."""
    home = tmp_path_factory.mktemp("cli-stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "BUCKET_"))}
    env["TASKFN_ADMIN_TOKEN"] = ADMIN_TOKEN
    process = subprocess.Popen([str(TASKFN), "local", "--port", "0", "--memory"], cwd=home,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        for line in process.stdout:  # handlers may log on stdout before it serves
            if line.startswith("taskfn local: serving "):
                break
        url = line.split()[-1]
        threading.Thread(target=collections.deque, args=(process.stdout, 0), daemon=True).start()
        yield Client(url, ADMIN_TOKEN, process.pid)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
    assert list(home.iterdir()) == []  # --memory: nothing written where it ran


@pytest.fixture(scope="module")
def cli(stack: Client, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    answer = stack.request("POST", "/v1/tokens", {"user": "cli-user", "scope": "user"})
    assert answer.status == 201, answer
    return Cli(stack.url, answer.json()["token"],
               tmp_path_factory.mktemp("cli") / "config.json")


@pytest.fixture(scope="module")
def hello(cli: Cli) -> str:
    """examples/hello, deployed as a user would."""
    ran = cli("fn", "deploy", str(HELLO))
    assert ran.code == 0, ran
    assert "main.py compiles and defines handler" in ran.out
    assert "SUCCESS" in ran.out
    return "hello"


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("taskfn: "), text
    return lines[0]


def test_login_writes_a_0600_config_that_the_environment_overrides(cli: Cli, tmp_path: Path):
    config = tmp_path / "sub" / "config.json"
    # The token from stdin (`-`): never on a command line.
    ran = cli("login", "--api", cli.url, "--token", "-", stdin=cli.token + "\n",
              TASKFN_CONFIG=str(config), TASKFN_API="", TASKFN_TOKEN="")
    assert ran.code == 0, ran
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text()) == {"api": cli.url, "token": cli.token}
    # The file alone is enough.
    ran = cli("fn", "ls", "--json", TASKFN_CONFIG=str(config), TASKFN_API="", TASKFN_TOKEN="")
    assert ran.code == 0, ran
    assert isinstance(json.loads(ran.out), list)
    # Each variable wins over the file.
    ran = cli("fn", "ls", TASKFN_CONFIG=str(config), TASKFN_API="", TASKFN_TOKEN="tfn_nobody")
    assert ran.code == 1
    assert "missing or invalid token (401 from GET /v1/function/list)" in one_line(ran.err)
    ran = cli("fn", "ls", TASKFN_CONFIG=str(config), TASKFN_API="http://127.0.0.1:9",
              TASKFN_TOKEN="")
    assert ran.code == 1
    assert "cannot reach http://127.0.0.1:9" in one_line(ran.err)
    # A token the platform refuses is not kept.
    ran = cli("login", "--api", cli.url, "--token", "-", stdin="tfn_wrong\n",
              TASKFN_CONFIG=str(tmp_path / "other.json"))
    assert ran.code == 1 and not (tmp_path / "other.json").exists()
    assert "missing or invalid token" in one_line(ran.err)


def test_nothing_configured_says_how_to_log_in(cli: Cli, tmp_path: Path):
    ran = cli("tasks", "ls", TASKFN_CONFIG=str(tmp_path / "none.json"), TASKFN_API="",
              TASKFN_TOKEN="")
    assert ran.code == 1
    assert "taskfn login --api URL --token T" in one_line(ran.err)


def test_deploy_then_run_wait_prints_the_answer_and_exits_0(cli: Cli, hello: str):
    ran = cli("run", hello, "--data", '{"name": "Ada"}', "--query", "steps=2",
              "--query", "pause=0", "--wait")
    assert ran.code == 0, ran
    answer = json.loads(ran.out)  # as the function answered it, nothing around it
    assert answer["message"] == "hello Ada" and answer["steps"] == 2
    assert "100%" in ran.err  # the bar of the task's own progress, at its end
    assert "200 application/json" in ran.err
    # Deploying again builds the same function again (found by name), not a second one.
    again = cli("fn", "deploy", str(HELLO), "--json")
    assert again.code == 0, again
    functions = json.loads(cli("fn", "ls", "--json").out)
    (only,) = [f for f in functions if f["name"] == hello]
    assert json.loads(again.out)["functionId"] == only["id"]


def test_run_without_wait_prints_the_task_id(cli: Cli, hello: str, tmp_path: Path):
    body = tmp_path / "body.json"
    body.write_text('{"name": "Grace"}')
    ran = cli("run", hello, "--data", f"@{body}", "-q", "steps=1", "-q", "pause=0")
    assert ran.code == 0, ran
    task = ran.out.strip()
    assert len(task) == 24
    deadline = time.monotonic() + 30
    while (shown := json.loads(cli("tasks", "show", task, "--json").out))["finished"] == "0":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert shown["functionId"]


def test_a_failing_task_exits_non_zero_with_its_reason(cli: Cli, hello: str):
    ran = cli("run", hello, "-q", "steps=1", "-q", "pause=0", "-q", "fail=1", "--wait")
    assert ran.code == 1, ran
    assert json.loads(ran.out)["errorType"] == "RuntimeError"  # the task's own answer
    line = [line for line in ran.err.splitlines() if line.startswith("taskfn: ")]
    assert len(line) == 1 and "failed (500): RuntimeError: asked to fail" in line[0], ran.err
    assert "Traceback" not in ran.err


def test_a_build_failure_prints_the_build_log(cli: Cli, tmp_path: Path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "main.py").write_text("def handler(event, context)\n    return 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-313.pyc").write_bytes(b"\0")
    ran = cli("fn", "deploy", str(folder), "--name", "brokenfn")
    assert ran.code == 1, ran
    assert "archive: 1 files" in ran.out  # the cache was left out of the zip
    assert "main.py line 1: expected ':'" in ran.out
    assert "FAILED" in ran.out
    assert "failed: main.py line 1: expected ':'" in one_line(ran.err.splitlines()[-1])


def test_logs_follow_ends_when_the_task_ends(cli: Cli, hello: str):
    task = cli("run", hello, "-q", "steps=3", "-q", "pause=0.3").out.strip()
    ran = cli("logs", "-f")  # no task given: the newest, the one just started
    assert ran.code == 0, ran
    assert f"task {task}" in ran.err
    assert ran.out.splitlines() == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]
    assert json.loads(cli("tasks", "show", task, "--json").out)["finished"] != "0"
    again = cli("logs", task)  # without -f: what is kept, at once
    assert again.out == ran.out


def test_tasks_ls_json_parses_and_filters(cli: Cli, hello: str):
    ran = cli("tasks", "ls", "--function", hello, "--status", "succeeded", "--json")
    assert ran.code == 0, ran
    tasks = json.loads(ran.out)
    assert tasks and all(t["status"] == 200 for t in tasks)
    table = cli("tasks", "ls", "--function", hello, "--limit", "2")
    assert table.code == 0 and "Progress" in table.out
    assert tasks[0]["id"] in table.out


def test_csv_writes_a_file(cli: Cli, hello: str, tmp_path: Path):
    task = json.loads(cli("tasks", "ls", "--function", hello, "--json").out)[0]["id"]
    target = tmp_path / "tasks.csv"
    ran = cli("csv", hello, "--since", "2000-01-01", "-o", str(target))
    assert ran.code == 0, ran
    rows = target.read_text().splitlines()
    assert rows[0] == "ID,IssuedAt,Status,ContentType,Body"
    assert any(row.startswith(task + ",") for row in rows)
    assert f"to {target}" in ran.err


def test_api_errors_are_one_line_with_the_apis_own_message(cli: Cli, hello: str):
    ran = cli("schedule", "create", hello, "--cron", "*/61 * * * *")
    assert ran.code == 1
    assert "cron minute step '61' is not valid" in one_line(ran.err)
    ran = cli("csv", hello, "--since", "2024-13-01")
    assert "dateSince must be a date, yyyy-mm-dd" in one_line(ran.err)
    ran = cli("jobs", "show", "nope", "00000000-0000-4000-8000-000000000000")  # fastlane's
    assert "Job not found in task. (404 from GET /tasks/nope/jobs/" in one_line(ran.err)
    ran = cli("jobs", "enqueue", "grp", "--image", "alpine", "--command", "")  # plain text
    assert "image and command must be filled in the request." in one_line(ran.err)
    ran = cli("logs", "000000000000000000000000")
    assert "(404 from GET /v1/task/000000000000000000000000/logs)" in one_line(ran.err)
    ran = cli("tasks", "ls", "--limit", "x")  # a usage error: a line too, not a box
    assert ran.code == 2 and "Invalid value for '--limit'" in one_line(ran.err)


def test_schedules_create_ls_rm(cli: Cli, hello: str):
    ran = cli("schedule", "create", hello, "--cron", "0 9 * * 1-5", "--timezone",
              "Europe/Berlin", "--data", '{"name": "cron"}', "-q", "steps=1")
    assert ran.code == 0, ran
    schedule = ran.out.strip()
    listed = json.loads(cli("schedule", "ls", "--function", hello, "--json").out)
    assert [s["cron"] for s in listed if s["id"] == schedule] == ["0 9 * * 1-5"]
    shown = json.loads(cli("schedule", "show", schedule, "--json").out)
    assert shown["inlinePayload"]["query"] == {"steps": "1"}
    assert cli("schedule", "rm", schedule).code == 0
    assert schedule not in cli("schedule", "ls").out


def test_jobs_enqueue_then_stdout(cli: Cli):
    ran = cli("jobs", "enqueue", "cli-group", "--image", "alpine:3", "--command",
              "sh -c 'echo hello from a job; exit 3'")
    assert ran.code == 0, ran
    job = ran.out.strip()
    out = cli("jobs", "stdout", "cli-group", job, "--wait")
    assert out.code == 0, out
    assert out.out.startswith("hello from a job")
    assert "exit code 3" in out.err
    shown = json.loads(cli("jobs", "show", "cli-group", job, "--json").out)
    assert shown["job"]["executions"][0]["exitCode"] == 3
    assert job in cli("jobs", "ls", "cli-group").out
    groups = json.loads(cli("jobs", "ls", "--json").out)
    assert "cli-group" in [g["taskId"] for g in groups["items"]]


def catches_sigint(pid: int) -> bool:
    """Whether the process has a handler of SIGINT (SigCgt in /proc/PID/status): a child
    of a runner that ignores SIGINT ignores it too until the CLI installs its own."""
    for entry in Path(f"/proc/{pid}/status").read_text().splitlines():
        if entry.startswith("SigCgt:"):
            return bool(int(entry.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


@pytest.mark.parametrize("command", ["run", "logs"])
def test_ctrl_c_exits_130_without_a_traceback(cli: Cli, stack: Client, hello: str, command: str):
    user = stack.as_user(cli.token)
    before = {t["id"] for t in user.request("GET", "/v1/task/list").json()}
    if command == "run":
        args = ["run", hello, "-q", "steps=20", "-q", "pause=0.5", "--wait"]
    else:
        task = cli("run", hello, "-q", "steps=20", "-q", "pause=0.5").out.strip()
        args = ["logs", task, "-f"]
    process = cli.popen(*args)
    deadline = time.monotonic() + 20
    if command == "run":  # its task exists: it is waiting for it
        while not {t["id"] for t in user.request("GET", "/v1/task/list").json()} - before:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    while not catches_sigint(process.pid):  # its handler is in: a Ctrl-C cannot be lost
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # well into its polling
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=20)
    assert process.returncode == 130, errors
    assert "Traceback" not in errors
    assert errors.splitlines()[-1] == "taskfn: interrupted"


def test_local_keeps_its_data_where_told_and_says_in_one_line_when_it_cannot(tmp_path: Path):
    """--data reaches the stack: a directory another stack holds is refused at once (no
    waiting: TASKFN_DATA_LOCK_WAIT_S=0), in one line and without a traceback."""
    from taskfn.local import datadir

    data = datadir.prepare(tmp_path / "data")
    with (data / datadir.LOCK).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running stack holds it
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "TABLE_", "BUCKET_", "TASKFN_"))}
        ran = subprocess.run([str(TASKFN), "local", "--port", "0", "--data", str(data)],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env={**env, "TASKFN_DATA_LOCK_WAIT_S": "0"})
    assert ran.returncode == 1, ran
    assert "Traceback" not in ran.stderr
    (line,) = [line for line in ran.stderr.splitlines() if line.startswith("taskfn local:")]
    assert line.startswith("taskfn local: cannot start:") and "in use" in line, ran.stderr
    assert "serving" not in ran.stdout


def test_hostile_code_reaches_the_terminal_as_text_only(cli: Cli, tmp_path: Path):
    """A function whose failure, content type and output carry Rich markup and terminal
    control sequences (an OSC 52 clipboard write), deployed from a folder with a symlink to
    /etc/passwd: the link stays out of the zip, and the one-line error and the table show
    the sequences as text; the result itself is the function's bytes."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "main.py").write_text(
        "def handler(event, context):\n"
        "    if event['query'].get('fail'):\n"
        "        raise RuntimeError('[/dim]\\x1b]52;c;cm0gLXJmIH4=\\x07 \\x1b[2J\\rall good')\n"
        "    return {'statusCode': 200, 'headers': {'Content-Type': 'text/[/x]plain'},\n"
        "            'body': '[bold]raw'}\n")
    (folder / "passwd").symlink_to("/etc/passwd")
    ran = cli("fn", "deploy", str(folder), "--name", "evilfn")
    assert ran.code == 0, ran
    assert "archive: 1 files" in ran.out and "passwd" in ran.err  # said to be left out
    ran = cli("run", "evilfn", "--wait")
    assert ran.code == 0, ran
    assert ran.out == "[bold]raw"
    assert "200 text/[/x]plain" in ran.err
    ran = cli("run", "evilfn", "-q", "fail=1", "--wait")
    assert ran.code == 1 and "Traceback" not in ran.err
    line = [line for line in ran.err.splitlines() if line.startswith("taskfn: ")]
    assert len(line) == 1 and "\x1b" not in ran.err and "\r" not in ran.err, ran.err
    # (a one-line message folds whitespace, \r included, into single spaces)
    assert "RuntimeError: [/dim]\\x1b]52;c;cm0gLXJmIH4=\\x07 \\x1b[2J all good" in line[0]
    task = line[0].split()[2]
    shown = cli("tasks", "show", task)
    assert shown.code == 0, shown
    assert "\x1b" not in shown.out and "failed: RuntimeError: [/dim]\\x1b]52" in shown.out
