"""A local stack with a data directory, killed (SIGKILL, its whole process group: moto too)
and started again on the directory: writes older than the snapshot interval are there, a task
queued before the kill runs exactly once, a task running at the kill is taken over by the
converger as a dead executor's, a job running at the kill ends by its rules, and a given admin
token replaces the kept one."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import ROOT, Client
from .test_idempotent_creates import ledger  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

SNAPSHOT_S = 1.0
# The converger every second, with BBS's timings shortened (as tests/e2e/test_faults_over_http
# does), so that the task that was running when the stack died is taken over in seconds.
SETTINGS = {"DISPATCH_GRACE_S": "1", "CELL_HEARTBEAT_S": "1", "CELL_TIMEOUT_S": "3"}
CHILD = """
import dataclasses, os, signal, sys, threading
from pathlib import Path
from taskfn.local import schedules
from taskfn.local.stack import LocalStack

every_second = lambda cls, template, invoker: cls(
    [dataclasses.replace(s, period_s=1.0) for s in template.schedules], invoker)
schedules.Schedules.of = classmethod(every_second)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stack = LocalStack(port=0, access_log=False, workers=1, data_dir=Path(sys.argv[1]),
                   snapshot_s=float(sys.argv[2]),
                   admin_token=os.environ.get("TASKFN_ADMIN_TOKEN") or None).start()
print("READY", stack.url, stack.admin_token, flush=True)
stop.wait()
stack.stop()
"""
WORK = '''
import time

def handler(event, context):
    body = event["body"]
    with open(body["ledger"], "a") as ledger:
        ledger.write("start " + event["taskId"] + "\\n")
    time.sleep(body.get("sleep", 0))
    return {"n": body["n"]}
'''


class Child:
    """`LocalStack(data_dir=...)` in a process group of its own (`taskfn local --data` is the
    CLI's, not landed yet)."""

    def __init__(self, data: Path, admin_token: str | None = None):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "TABLE_", "BUCKET_", "TASKFN_ADMIN"))}
        env.update(SETTINGS)
        if admin_token:
            env["TASKFN_ADMIN_TOKEN"] = admin_token
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(SNAPSHOT_S)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True)
        for line in self.process.stdout:  # the handlers' log lines come on stdout too
            if line.startswith("READY "):
                _, self.url, self.admin_token = line.split()
                break
        else:
            raise AssertionError("the stack did not start")
        threading.Thread(target=collections.deque, args=(self.process.stdout, 0),
                         daemon=True).start()

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def execution(user: Client, job_id: str) -> dict:
    job = user.request("GET", f"/tasks/killed/jobs/{job_id}").json()["job"]
    return job["executions"][0] if job["executions"] else {"status": "none"}


def starts(ledger: Path, task_id: str) -> int:  # noqa: F811 - the fixture's file
    return ledger.read_text().split().count(task_id)


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_killed_stack_keeps_what_was_snapshotted_and_finishes_its_work_once(
        tmp_path: Path, ledger: Path):  # noqa: F811 - the imported fixture
    data = tmp_path / "data"
    first = Child(data)
    try:
        admin = Client(first.url, first.admin_token)
        token = admin.request("POST", "/v1/tokens", {"user": "survivor", "scope": "user"}
                              ).json()["token"]
        user = Client(first.url, token)
        function_id = user.request("POST", "/v1/function", {"name": "work", "source": WORK}
                                   ).json()["id"]

        def create(n: int, sleep: float = 0) -> str:
            answer = user.request("POST", f"/v1/task/{function_id}",
                                  {"n": n, "sleep": sleep, "ledger": str(ledger)})
            assert answer.status == 201, answer
            return answer.json()["id"]

        done = [create(n) for n in range(5)]
        for task_id in done:
            assert user.wait_result(task_id).json() == {"n": done.index(task_id)}
        job = user.request("POST", "/tasks/killed", {"image": "alpine",
                                                     "command": "sleep 60"}).json()
        wait_until(lambda: execution(user, job["jobId"])["status"] == "running")
        running = create(100, sleep=30)  # the only executor worker is busy with it...
        wait_until(lambda: starts(ledger, running) == 1)
        queued = create(101)  # ...so this one waits in the queue
        time.sleep(2.5 * SNAPSHOT_S)  # both are in a snapshot now
        recent: list[tuple[float, str]] = []
        until = time.monotonic() + 1.5 * SNAPSHOT_S
        while time.monotonic() < until:  # writes up to the kill: some are lost
            recent.append((time.monotonic(), create(200 + len(recent))))
        killed_at = time.monotonic()
        assert starts(ledger, queued) == 0
        first.kill()
    finally:
        first.stop()

    # A given admin token replaces the kept one, which stops working (the integration test
    # shows the kept one used when none is given).
    second = Child(data, admin_token="tfn_e2e-persistence-admin-0123456789")
    try:
        assert (data / "admin-token").read_text().split() == [second.admin_token]
        assert Client(second.url, first.admin_token).request(
            "GET", "/v1/task/list").status == 401
        user = Client(second.url, token)
        for number, task_id in enumerate(done):
            assert user.request("GET", f"/v1/task/{task_id}/result").json() == {"n": number}
        assert user.wait_result(queued).json() == {"n": 101}
        # The running task's executor died with the stack: the converger takes it over (here:
        # a new attempt, since it has retries left), and it ends.
        wait_until(lambda: user.request("GET", f"/v1/task/{running}").json()["finished"],
                   timeout=90)
        kept = [(at, task_id) for at, task_id in recent
                if user.request("GET", f"/v1/task/{task_id}").status == 200]
        for _, task_id in kept:
            assert user.wait_result(task_id).status == 200
        lost = [at for at, task_id in recent if (at, task_id) not in kept]
        window = killed_at - min(lost) if lost else 0.0
        print(f"\nSIGKILL lost {len(lost)} of {len(recent)} tasks created in the last "
              f"{killed_at - recent[0][0]:.1f} s: writes of the last {window:.2f} s "
              f"(snapshots every {SNAPSHOT_S} s)")
        # What is lost is the latest writes, never one older than one that was kept.
        assert not lost or not kept or max(at for at, _ in kept) < min(lost)
        # The job's command died with the stack: its run is told ended as ECS tells a task
        # whose host died (killed), and the job ends by its rules (no retries: failed).
        wait_until(lambda: execution(user, job["jobId"])["status"] != "running")
        ended = execution(user, job["jobId"])
        assert (ended["status"], ended["exitCode"]) == ("failed", 137), ended
        # Every task that survived ran exactly once (the duplicate sends of the converger and
        # the messages the dead executor held included).
        time.sleep(2)
        assert starts(ledger, queued) == 1
        assert all(starts(ledger, task_id) == 1 for _, task_id in kept)
    finally:
        second.stop()
