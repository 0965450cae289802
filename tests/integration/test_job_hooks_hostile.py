"""fastlane webhooks against hostile servers and users (services/hooks.py): each test the
attack, failing when it works."""

from __future__ import annotations

import json
import socket
import threading

from taskfn import lifecycle, wiring
from taskfn.adapters.fastlane import parse_enqueue
from taskfn.models import TaskRecord, now_ns
from taskfn.services.jobs import JobService
from taskfn.stores.jobs import JobsStore, executions_partition

from .helpers import ALICE
from .test_container_runs import CELL, launched, runs, stopped  # noqa: F401
from .test_job_hooks import Hooked, hooks, queued, react, server  # noqa: F401


def enqueue_as(caller, body: dict, task_id: str = "group") -> str:
    payload = parse_enqueue(json.dumps({"image": "alpine", "command": "echo hi", **body},
                                       ensure_ascii=False).encode())
    return JobService.from_env().enqueue(caller, task_id, payload,
                                         request_ip="1.2.3.4").job_id


def launched_as(service, owner: str, job_id: str, task_id: str = "group") -> str:
    (pointer,) = JobsStore(wiring.table()).executions(owner, task_id, job_id, limit=1)
    started = wiring.tasks().apply(pointer.task_guid, lifecycle.start(CELL, now_ns()))
    assert service.launch(TaskRecord.model_validate(started.task), CELL) == "launched"
    return pointer.task_guid


class RawServer:
    """A 'webhook server' that answers with raw bytes."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(self.answer)
            except OSError:
                pass
            finally:
                conn.close()


def pointer_item_bytes(owner: str, job_id: str, guid: str) -> int:
    item = wiring.table().get(executions_partition(owner, "group", job_id), "X#" + guid,
                              consistent=True)
    return len(json.dumps(item))


def test_a_garbage_status_line_does_not_bloat_the_execution_item(hooks, runs):  # noqa: F811
    """A status line of 64 KiB of control characters: http.client's BadStatusLine carries it
    whole, so an error text kept uncut would put ~240 KB in the execution's item."""
    hooks, stream, _ = hooks
    service, runtime = runs
    raw = RawServer(bytes(range(1, 32)).replace(b"\n", b"").replace(b"\r", b"") * 2100 + b"\r\n")
    job_id = enqueue_as(ALICE, {"webhooks": {"finishes": [{"url": raw.url, "retries": 3}]}})
    guid = launched_as(service, "alice", job_id)
    service.on_event(stopped(runtime, guid, 0))
    react(hooks, stream)
    (message,) = queued("webhook")
    assert hooks.deliver(json.dumps(message)) == "retrying"
    size = pointer_item_bytes("alice", job_id, guid)
    _, execution = JobService.from_env().execution(ALICE, "group", job_id, guid)
    (dispatch,) = execution.pointer.webhook_dispatch
    print("error chars", len(dispatch["error"]), "item bytes", size)
    # kept: body 1 KiB, 20 headers of 256: an error text should be no bigger than that
    assert len(dispatch["error"]) <= 4096, f"error text of {len(dispatch['error'])} chars"


GARBAGE = bytes(range(1, 32)).replace(b"\n", b"").replace(b"\r", b"") * 2100 + b"\r\n"


def test_bloated_dispatch_history_does_not_hide_runs_from_stop_job_and_details(
        hooks, runs):  # noqa: F811
    """Bloated newer executions (webhook answers kept on their pointers) must not hide an
    older unfinished run from stop_job or the details, which read pages of 1 MB."""
    hooks, stream, _ = hooks
    service, runtime = runs
    raw = RawServer(GARBAGE)
    job_id = enqueue_as(ALICE, {"command": "sleep 600",
                                "webhooks": {"finishes": [{"url": raw.url}]}})
    first = launched_as(service, "alice", job_id)  # runs on (a long cron run)
    jobs = JobService.from_env()
    jobs._runs = service
    from taskfn import ids
    for _ in range(5):  # later fires of the job, each ending at once
        job = jobs.jobs.job("alice", "group", job_id)
        now = now_ns()
        run = jobs._run(job, {}, ids.new_uuid7(now), now)
        assert jobs.jobs.add_execution(jobs._pointer(job, run.task_guid, run.task_guid, 1, now),
                                       wiring.tasks().item_for(run))
        guid = launched_as(service, "alice", job_id)
        assert guid == run.task_guid
        service.on_event(stopped(runtime, guid, 0))
        react(hooks, stream)
        for message in queued("webhook"):
            hooks.deliver(json.dumps(message))
    _, shown = jobs.job_details(ALICE, "group", job_id)
    print("executions shown", len(shown))
    jobs.stop_job(ALICE, "group", job_id)
    first_ref = wiring.tasks().get(first).container_ref
    assert first_ref in {ref for ref, _ in runtime.stops}, "the long run was not stopped"
    assert len(shown) == 6, f"job details show {len(shown)} of 6 executions"


def test_stop_job_stops_a_run_older_than_its_hundred_newest_executions(runs):  # noqa: F811
    """A cron job whose fires fail fast with retries (up to 9 pointers a fire) buries a long
    run (timeout up to 1800 s) under 100 newer executions within minutes: a job stop must
    still stop it."""
    service, runtime = runs
    jobs = JobService.from_env()
    jobs._runs = service
    job_id = enqueue_as(ALICE, {"command": "sleep 600"})
    first = launched_as(service, "alice", job_id)
    from taskfn import ids
    job = jobs.jobs.job("alice", "group", job_id)
    for _ in range(100):
        now = now_ns()
        run = jobs._run(job, {}, ids.new_uuid7(now), now)
        assert jobs.jobs.add_execution(jobs._pointer(job, run.task_guid, run.task_guid, 1, now),
                                       wiring.tasks().item_for(run))
    jobs.stop_job(ALICE, "group", job_id)
    first_ref = wiring.tasks().get(first).container_ref
    assert first_ref in {ref for ref, _ in runtime.stops}, "the oldest run was left running"


def test_a_webhook_removed_by_a_put_is_not_posted_by_a_queued_retry(hooks, runs, server):  # noqa: F811
    """A user who PUTs the job to remove a leaking URL or token: the queued retries of that
    hook (each message carries the URL and headers of when the run ended) must stop."""
    hooks, stream, _ = hooks
    service, runtime = runs
    job_id = enqueue_as(ALICE, {"webhooks": {"finishes": [
        {"url": f"{server.url}/old", "headers": {"Authorization": "Bearer leaked"},
         "retries": 3}]}})
    guid = launched_as(service, "alice", job_id)
    service.on_event(stopped(runtime, guid, 0))
    react(hooks, stream)
    (message,) = queued("webhook")
    # the job is replaced without the webhook (a PUT; it starts a new run too)
    payload = parse_enqueue(json.dumps({"image": "alpine", "command": "echo hi"}).encode())
    JobService.from_env().enqueue(ALICE, "group", payload, request_ip="1.2.3.4", job_id=job_id)
    assert hooks.deliver(json.dumps(message)) != "delivered" or not server.posts, \
        "the removed webhook was posted with its old headers"
