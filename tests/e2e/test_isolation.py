"""Hostile functions against `taskfn local` over real HTTP: what a stranger's code may try from
inside the platform. Each test is the attack itself: it reads the platform's environment and
memory, leaves a daemon, forks without end, poisons the code cache, and talks to the moto
endpoint behind the stack; each must come to nothing."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from taskfn.runtime import confinement
from tests import hostile
from tests.e2e.conftest import ADMIN_TOKEN, Client

pytestmark = pytest.mark.e2e


def run(user: Client, source: str, body: object = None, timeout: float = 90) -> dict:
    """Create a function from source, run one task with body, and return its JSON result."""
    created = user.request("POST", "/v1/function", {"name": "hostile", "lang": "PY",
                                                    "source": source})
    assert created.status == 201, created
    task = user.request("POST", f"/v1/task/{created.json()['id']}", body or {})
    assert task.status == 201, task
    result = user.wait_result(task.json()["id"], timeout)
    assert result.status == 200, result
    return result.json()


@pytest.fixture(scope="module")
def mallory(stack: Client) -> Client:
    answer = stack.request("POST", "/v1/tokens", {"user": "mallory", "scope": "user"})
    assert answer.status == 201, answer
    return stack.as_user(answer.json()["token"])


def test_a_function_cannot_read_trace_or_dump_the_platform_process(mallory):
    seen = run(mallory, hostile.READ_PARENT)
    assert hostile.failed(seen["environ"]), seen["environ"]
    assert hostile.failed(seen["mem"]), seen["mem"]
    assert hostile.failed(seen["ptrace"]), seen["ptrace"]
    assert ADMIN_TOKEN not in json.dumps(seen)  # the command line holds no secret either


def test_a_function_reads_no_process_of_the_machine(mallory):
    found = run(mallory, hostile.READ_EVERY_PROCESS)
    text = json.dumps(found)
    assert ADMIN_TOKEN not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert not any(key.endswith("/mem") for key in found), sorted(found)


def test_a_daemon_is_gone_when_its_task_has_finished(mallory):
    daemon = run(mallory, hostile.DAEMON)["daemon"]
    assert hostile.wait_dead(daemon)  # the result is stored after the run's sweep


def test_a_fork_bomb_is_bounded_and_gone_when_its_task_has_finished(mallory):
    pids = run(mallory, hostile.FORK_BOMB, {"cap": 4 * confinement.MAX_PROCESSES})["pids"]
    assert 0 < len(pids) < confinement.MAX_PROCESSES
    assert all(hostile.wait_dead(pid) for pid in pids)


def test_a_function_cannot_change_what_another_users_function_runs(user, mallory):
    victim = "def handler(event, context):\n    return {'me': 'victim'}\n"
    created = user.request("POST", "/v1/function", {"name": "victim", "lang": "PY",
                                                    "source": victim})
    assert created.status == 201, created
    victim_id = created.json()["id"]

    def victim_runs() -> dict:
        task = user.request("POST", f"/v1/task/{victim_id}", {})
        assert task.status == 201, task
        return user.wait_result(task.json()["id"]).json()

    assert victim_runs() == {"me": "victim"}
    report = run(mallory, hostile.POISON_CACHE, {"cache": "/tmp/taskfn-code"})
    assert "written" not in json.dumps(report), report
    assert victim_runs() == {"me": "victim"}


def _moto_port(stack_pid: int) -> int:
    """The port moto listens on: the stack's motoserver child, through its sockets."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, ValueError):
            continue
        if parent != stack_pid or b"taskfn.local.motoserver" not in command:
            continue
        sockets = set()
        for fd in os.listdir(f"/proc/{entry}/fd"):
            link = os.readlink(f"/proc/{entry}/fd/{fd}")
            if link.startswith("socket:["):
                sockets.add(link[8:-1])
        with open("/proc/net/tcp") as table:
            for row in table.readlines()[1:]:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in sockets:  # LISTEN
                    return int(fields[1].split(":")[1], 16)
    raise AssertionError("no moto process under the stack")


def test_a_function_can_do_nothing_with_the_moto_endpoint(stack, mallory):
    port = _moto_port(stack.pid)
    endpoint = f"http://127.0.0.1:{port}"
    # The names an attacker reading taskfn's source would guess (they are deterministic).
    body = {"endpoint": endpoint, "table": "taskfn-local-table", "bucket": "taskfn-local-bucket",
            "queue": f"{endpoint}/123456789012/taskfn-local-taskqueue"}
    answers = run(mallory, hostile.moto_probe_source(), body)
    for attempt, answer in answers.items():
        assert answer["status"] in (403, 404), (attempt, answer)
        assert "TOKEN#" not in answer["body"] and "Items" not in answer["body"], attempt
    # IAM is still on and the platform still works: a marker task of a fresh user runs.
    marker = f"still-{uuid.uuid4().hex}"
    assert run(mallory, f"def handler(event, context):\n    return {{'m': {marker!r}}}\n") == {
        "m": marker}
