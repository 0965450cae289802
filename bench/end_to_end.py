"""Figure 4: tasks end to end through the local stack, against the AWS-request floor.

The stack runs as a child (`taskfn local`), as a user runs it; clients create tasks over
HTTP from many threads and one poller lists tasks to see when each finished. The floor is
the least the design allows: the same tasks as bare AWS requests (create = PutItem +
SendMessage; run = ReceiveMessage + start UpdateItem + complete UpdateItem + DeleteMessage)
sent by as many threads straight to a moto server of their own. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import http.client
import inspect
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.common import Figure, Section, median, percentile

ROOT = Path(__file__).resolve().parent.parent
TASKS, QUICK_TASKS = 1000, 200
THREADS = 16
IDLE_TASKS, QUICK_IDLE_TASKS = 5, 3
POLL_INTERVAL_S = 0.05
POLL_BUSY_SHARE = 0.2  # of the time the poller may keep the stack busy
LIST_LIMIT = 100  # pages of 100: a poll stops at the oldest unfinished task
RUN_LIMIT_S, QUICK_RUN_LIMIT_S = 240.0, 90.0  # per phase: creating and finishing N tasks
START_LIMIT_S = 90.0
REQUEST_TIMEOUT_S = 60.0
TARGET_RATIO = 0.5
ADMIN_TOKEN = "tfn_bench-admin-" + uuid.uuid4().hex
NOOP_SOURCE = "def handler(event, context):\n    return None\n"
FAKE_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


# --- children: the stack, and a bare moto server ----------------------------------------


def _clean_env() -> dict[str, str]:
    """This process's environment without AWS settings, so children start from nothing."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "TABLE_", "BUCKET_", "TASK_QUEUE_"))
    }


class Child:
    """A child process whose first stdout line says it is ready; stopped with SIGTERM."""

    def __init__(self, argv: list[str], ready_prefix: str, wait_s: float = START_LIMIT_S,
                 env: dict[str, str] | None = None) -> None:
        # Closed in stop(): the child writes to it for its whole life.
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**_clean_env(), **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.first_line = self._first_line(ready_prefix, wait_s)
        # Drain the rest so a chatty child can never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _first_line(self, prefix: str, wait_s: float) -> str:
        lines: list[str] = []
        assert self.process.stdout is not None
        reader = threading.Thread(
            target=lambda: lines.append(self.process.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(wait_s)
        line = lines[0].strip() if lines else ""
        if not line.startswith(prefix):
            tail = self.stderr_tail()
            self.stop()
            raise RuntimeError(f"{prefix!r} expected, got {line!r}; stderr: {tail}")
        return line

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for _ in self.process.stdout:
            pass

    def stderr_tail(self, lines: int = 5) -> str:
        self.errors.seek(0)
        text = self.errors.read().decode(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM and wait (the stack stops its pollers and moto); kill after 30 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.errors.close()


def moto_child() -> None:
    """`python -m bench.end_to_end --moto`: moto with the template's resources, until stdin
    closes. Its own process, so the environment it sets never leaks into the runner."""
    import logging

    from moto.server import ThreadedMotoServer

    from taskfn.local.provision import function_environment, provision
    from taskfn.local.template import load_template

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    template = load_template()
    environment = function_environment(template, provision(template, prefix="taskfn-bench"))
    ready = {
        "endpoint": endpoint,
        "table": environment["TABLE_NAME"],
        "queue": environment["TASK_QUEUE_URL"],
    }
    print("moto ready " + json.dumps(ready), flush=True)
    sys.stdin.read()  # until the parent closes stdin or ends us
    server.stop()


# --- HTTP to the stack -------------------------------------------------------------------


class Http:
    """One keep-alive connection to the stack (one per thread: http.client is not shared)."""

    # A kept-alive connection may have been closed by the server: one silent retry.
    attempts = 2

    def __init__(self, url: str, token: str) -> None:
        host_port = url.split("://", 1)[1].rstrip("/")
        self.host, _, port = host_port.partition(":")
        if self.host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the benchmark only talks to 127.0.0.1, not {self.host}")
        self.port = int(port or 80)
        self.token = token
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.attempts + 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT_S
                )
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
            except BaseException as error:
                self.close()  # the next request opens a new connection
                retriable = isinstance(error, ConnectionError | http.client.HTTPException)
                if not retriable or attempt == self.attempts:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, _, payload = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {payload[:200]!r}")
        return json.loads(payload)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# --- the stack run -------------------------------------------------------------------------


@dataclass
class Created:
    start: float
    end: float
    task_id: str


@dataclass
class Poller:
    """Lists tasks (newest first) every POLL_INTERVAL_S; notes when each is first finished.

    A poll reads pages only until it has seen every watched task that is not finished yet:
    listing costs the stack a few ms per task, so reading all N every time would load the
    stack being measured far more than the backlog needs.
    """

    http: Http
    finished: dict[str, float] = field(default_factory=dict)  # first seen finished
    unfinished: dict[str, float] = field(default_factory=dict)  # last seen not finished
    poll_starts: list[float] = field(default_factory=list)
    poll_seconds: list[float] = field(default_factory=list)
    pages: int = 0
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _watched: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, task_id: str) -> None:
        with self._lock:
            self._watched.add(task_id)

    def poll_once(self) -> None:
        started = time.perf_counter()
        self.poll_starts.append(started)
        with self._lock:
            waiting = self._watched - self.finished.keys()
        cursor: str | None = None
        for _ in range(1000):  # pages; bounded even if the cursor never ends
            path = f"/v1/task/list?limit={LIST_LIMIT}"
            if cursor:
                path += f"&cursor={cursor}"
            status, headers, payload = self.http.request("GET", path)
            self.pages += 1
            if status != 200:
                self.errors += 1
                break
            seen = time.perf_counter()
            for item in json.loads(payload):
                waiting.discard(item["id"])
                if item.get("status", 0) == 0:
                    self.unfinished[item["id"]] = seen
                elif item["id"] not in self.finished:
                    self.finished[item["id"]] = seen
            cursor = headers.get("x-next-cursor")
            if not cursor or not waiting:
                break
        self.poll_seconds.append(time.perf_counter() - started)

    def run(self, deadline: float) -> None:
        """Poll every POLL_INTERVAL_S, or less often while polls are slow: the poller may
        keep the stack busy POLL_BUSY_SHARE of the time at most (listing without a pause
        cost a third of the throughput it measured: 7.2 against 11 tasks/s)."""
        while not self.stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                self.poll_once()
            except (OSError, http.client.HTTPException, ValueError):
                self.errors += 1
            took = time.monotonic() - started
            pause = max(POLL_INTERVAL_S - took, took * (1 / POLL_BUSY_SHARE - 1))
            self.stop.wait(pause)

    def finish_time(self, task: Created) -> float:
        """When a finished task finished: midway between the last poll that saw it
        unfinished (or its create's answer) and the first that saw it finished."""
        before = max(self.unfinished.get(task.task_id, task.end), task.end)
        return (before + self.finished[task.task_id]) / 2

    def wait_for(self, ids: list[str], deadline: float) -> bool:
        """Poll in this thread until every id has finished; False at the deadline."""
        for task_id in ids:
            self.watch(task_id)
        while time.monotonic() < deadline:
            self.poll_once()
            if all(task_id in self.finished for task_id in ids):
                return True
            time.sleep(POLL_INTERVAL_S)
        return False


def _create_tasks(
    url: str,
    token: str,
    function_id: str,
    count: int,
    threads: int,
    deadline: float,
    on_created: Callable[[str], None] | None = None,
) -> tuple[list[Created], list[str]]:
    """`count` tasks created by `threads` concurrent clients, each with its own connection."""
    created: list[Created] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(count))

    def client() -> None:
        connection = Http(url, token)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                start = time.perf_counter()
                try:
                    status, _, payload = connection.request(
                        "POST", f"/v1/task/{function_id}", {"n": index}
                    )
                except (OSError, http.client.HTTPException) as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                end = time.perf_counter()
                if status != 201:
                    with lock:
                        errors.append(f"{status} {payload[:120]!r}")
                    continue
                task_id = json.loads(payload)["id"]
                if on_created is not None:
                    on_created(task_id)
                with lock:
                    created.append(Created(start, end, task_id))
        finally:
            connection.close()

    workers = [threading.Thread(target=client, name=f"bench-client-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(1.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S)
    return created, errors


def _executor_workers() -> int | None:
    """How many SQS poller threads the local stack runs (its default; no CLI flag sets it)."""
    try:
        from taskfn.local.stack import LocalStack

        return inspect.signature(LocalStack.__init__).parameters["workers"].default
    except (ImportError, KeyError):
        return None


def _wait_for_build(admin: Http, function_id: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        function = admin.json("GET", f"/v1/function/{function_id}")
        build_id = function.get("buildId")
        if build_id:
            status = admin.json("GET", f"/v1/build/{build_id}").get("status")
            if status == "SUCCESS":
                return
            if status == "FAILED":
                raise RuntimeError("the noop function failed to build")
        time.sleep(0.1)
    raise RuntimeError("the noop function did not build in time")


class Profile:
    """The stack's own figures of where its time goes (taskfn.local.profiling): the stack
    rewrites them in a file every half second; a phase's are the difference of two reads."""

    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="taskfn-bench-profile-")
        self.path = Path(self.directory.name) / "profile.json"

    @property
    def env(self) -> dict[str, str]:
        from taskfn.local import profiling

        return {profiling.ENV: str(self.path)}

    def read(self, fresh: bool = False) -> dict | None:
        """The latest figures; `fresh`: written after this call (waits up to 2 s)."""
        from taskfn.local import profiling

        asked = time.time()
        deadline = time.monotonic() + 2.0
        while True:
            figures = profiling.read(self.path)
            if not fresh or (figures and figures.get("at", 0) > asked):
                return figures
            if time.monotonic() > deadline:
                return figures
            time.sleep(0.05)

    def phase(self, before: dict | None, tasks: int) -> dict | None:
        """Per task, what happened since `before` (None when the stack wrote nothing)."""
        from taskfn.local import profiling

        after = self.read(fresh=True)
        if after is None:
            return None
        phase = profiling.difference(before, after)
        if os.environ.get("TASKFN_BENCH_PROFILE_RAW"):  # every section, for a closer look
            Path(os.environ["TASKFN_BENCH_PROFILE_RAW"]).write_text(json.dumps(phase))
        return profiling.breakdown(phase, tasks)

    def close(self) -> None:
        self.directory.cleanup()


def start_stack(profile: Profile | None = None) -> Child:
    """`taskfn local --memory` on a free port, with the bench's admin token (and figures of
    where its time goes, with a Profile)."""
    return Child(
        [sys.executable, "-m", "taskfn.cli", "local", "--memory", "--port", "0"],
        "taskfn local: serving ",
        env={"TASKFN_ADMIN_TOKEN": ADMIN_TOKEN, **(profile.env if profile else {})},
    )


def run_stack(tasks: int, threads: int, idle_tasks: int, limit_s: float) -> dict:
    """Drive the local stack; every timestamp is time.perf_counter() in this process."""
    profile = Profile()
    stack = start_stack(profile)
    url = stack.first_line.split()[-1]
    result: dict[str, Any] = {"url": url}
    try:
        admin = Http(url, ADMIN_TOKEN)
        token = admin.json("POST", "/v1/tokens", {"user": "bench", "scope": "user"}, 201)["token"]
        user = Http(url, token)
        function_id = user.json(
            "POST", "/v1/function", {"name": "noop", "lang": "PY", "source": NOOP_SOURCE}, 201
        )["id"]
        _wait_for_build(user, function_id, time.monotonic() + START_LIMIT_S)

        # Idle: one task at a time, so every handler is imported and the code is cached,
        # and the latency of a task on a quiet stack is known (the latencies' baseline).
        poller = Poller(Http(url, token))
        idle: list[float] = []
        for _ in range(idle_tasks):
            created, errors = _create_tasks(
                url, token, function_id, 1, 1, time.monotonic() + START_LIMIT_S
            )
            if errors or not created:
                raise RuntimeError(f"an idle task was not created: {errors[:1]}")
            task = created[0]
            if not poller.wait_for([task.task_id], time.monotonic() + START_LIMIT_S):
                raise RuntimeError("an idle task did not finish in time")
            idle.append(poller.finish_time(task) - task.end)
        result["idle_latency_s"] = idle

        # Loaded: N tasks from `threads` clients while the poller watches.
        profile_before = profile.read(fresh=True)
        deadline = time.monotonic() + limit_s
        watcher = threading.Thread(target=poller.run, args=(deadline,), name="bench-poller")
        polls_before, pages_before = len(poller.poll_seconds), poller.pages
        watcher.start()
        created, errors = _create_tasks(
            url, token, function_id, tasks, threads, deadline, on_created=poller.watch
        )
        ids = {task.task_id for task in created}
        while time.monotonic() < deadline and not ids <= poller.finished.keys():
            time.sleep(0.05)
        poller.stop.set()
        watcher.join(REQUEST_TIMEOUT_S)
        ids_done = ids & poller.finished.keys()
        result["profile"] = profile.phase(profile_before, len(ids_done))
        result.update(
            created=created,
            create_errors=errors,
            finished={t.task_id: poller.finish_time(t) for t in created if t.task_id in ids_done},
            poll_seconds=poller.poll_seconds[polls_before:],
            poll_intervals=[
                b - a for a, b in itertools.pairwise(poller.poll_starts[polls_before:])
            ],
            poll_pages=poller.pages - pages_before,
        )
        result["poll_errors"] = poller.errors
        for connection in (admin, user, poller.http):
            connection.close()
    finally:
        stack.stop()
        profile.close()
    return result


# --- the floor -----------------------------------------------------------------------------


def _floor_clients(endpoint: str, threads: int) -> tuple[Any, Any]:
    """DynamoDB and SQS clients for the floor: explicit endpoint and fake credentials."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(**FAKE_CREDENTIALS)
    config = Config(max_pool_connections=threads * 2, retries={"mode": "standard"})
    return (
        session.client("dynamodb", endpoint_url=endpoint, config=config),
        session.client("sqs", endpoint_url=endpoint, config=config),
    )


def run_floor(tasks: int, threads: int, limit_s: float) -> dict:
    """The same tasks as the minimum AWS requests, from this process to a moto child."""
    argv = [sys.executable, "-m", "bench.end_to_end", "--moto"]
    moto = Child(argv, "moto ready ")
    try:
        ready = json.loads(moto.first_line.split(" ", 2)[2])
        dynamodb, sqs = _floor_clients(ready["endpoint"], threads)
        return _drive_floor(dynamodb, sqs, ready["table"], ready["queue"], tasks, threads, limit_s)
    finally:
        moto.stop()


def _floor_requests(dynamodb: Any, sqs: Any, table: str, queue: str) -> tuple[Any, Any]:
    """The create and the run of one task, shaped like taskfn's own requests."""

    def create(task_id: str) -> None:
        now = str(time.time_ns())
        dynamodb.put_item(
            TableName=table,
            Item={
                "PK": {"S": f"TASK#{task_id}"},
                "SK": {"S": "TASK"},
                "GSI1PK": {"S": "OWNER#bench#TASK"},
                "GSI1SK": {"S": f"{now}#{task_id}"},
                "GSI3PK": {"S": "STATE#Pending"},
                "GSI3SK": {"S": f"{now}#{task_id}"},
                "task_guid": {"S": task_id},
                "state": {"S": "Pending"},
                "created_at": {"N": now},
                "updated_at": {"N": now},
            },
            ConditionExpression="attribute_not_exists(PK)",
        )
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"taskId": task_id}))

    def transition(task_id: str, from_state: str, to_state: str) -> bool:
        now = str(time.time_ns())
        try:
            dynamodb.update_item(
                TableName=table,
                Key={"PK": {"S": f"TASK#{task_id}"}, "SK": {"S": "TASK"}},
                UpdateExpression="SET #state = :to, #cell = :cell, #updated = :now, "
                "#g3pk = :g3pk, #g3sk = :g3sk",
                ConditionExpression="#state IN (:from)",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#cell": "cell_id",
                    "#updated": "updated_at",
                    "#g3pk": "GSI3PK",
                    "#g3sk": "GSI3SK",
                },
                ExpressionAttributeValues={
                    ":to": {"S": to_state},
                    ":from": {"S": from_state},
                    ":cell": {"S": "bench-cell"},
                    ":now": {"N": now},
                    ":g3pk": {"S": f"STATE#{to_state}"},
                    ":g3sk": {"S": f"{now}#{task_id}"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def run(message: dict) -> bool:
        task_id = json.loads(message["Body"])["taskId"]
        done = transition(task_id, "Pending", "Running") and transition(
            task_id, "Running", "Completed"
        )
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return done

    return create, run


def _drive_floor(
    dynamodb: Any, sqs: Any, table: str, queue: str, tasks: int, threads: int, limit_s: float
) -> dict:
    create, run = _floor_requests(dynamodb, sqs, table, queue)
    # Warm up: connections open, moto's code paths loaded.
    create("warm-up")
    for message in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
        run(message)

    lock = threading.Lock()
    next_index = iter(range(tasks))
    completed: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + limit_s

    def worker() -> None:
        # First create while there is something to create, then run what the queue gives.
        while time.monotonic() < deadline:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            try:
                create(f"floor-{index}")
            except Exception as error:
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
        while time.monotonic() < deadline:
            with lock:
                if len(completed) + len(errors) >= tasks:
                    return
            try:
                answer = sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                for message in answer.get("Messages", []):
                    done = run(message)
                    with lock:
                        if done:
                            completed.append(time.perf_counter())
            except Exception as error:
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, name=f"bench-floor-{n}") for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(max(1.0, deadline - time.monotonic()) + REQUEST_TIMEOUT_S)
    return {"started": started, "completed": completed, "errors": errors}


# --- the section -----------------------------------------------------------------------------


def _floor_stats(floor: dict) -> dict:
    done = floor["completed"]
    seconds = max(done) - floor["started"] if done else None
    return {
        "completed": len(done),
        "errors": floor["errors"][:5],
        "seconds": round(seconds, 2) if seconds else None,
        "tasks_per_s": round(len(done) / seconds, 1) if seconds else None,
    }


def _floor_or_error(tasks: int, limit_s: float) -> dict:
    """A floor's numbers; a floor that fails leaves the stack's figures without a baseline."""
    try:
        return _floor_stats(run_floor(tasks, THREADS, limit_s))
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:300], "tasks_per_s": None}


def _latency_figure(name: str, p: float, latencies_ms: list[float], idle_ms: float) -> Figure:
    return Figure(
        name=name,
        value=round(percentile(latencies_ms, p), 1),
        unit="ms",
        baseline=round(idle_ms, 1),
        baseline_name="median create→completed of one task on the idle stack",
    )


def measure(quick: bool = False) -> Section:
    """End-to-end tasks/s and latency through the local stack, against the request floor."""
    tasks = QUICK_TASKS if quick else TASKS
    limit_s = QUICK_RUN_LIMIT_S if quick else RUN_LIMIT_S
    idle_tasks = QUICK_IDLE_TASKS if quick else IDLE_TASKS
    started = time.monotonic()
    section = Section(key="end_to_end", title="End to end through the local stack")
    section.details["settings"] = {
        "tasks": tasks,
        "concurrent_clients": THREADS,
        "executor_workers": _executor_workers(),
        "idle_tasks": idle_tasks,
        "poll_interval_ms": f"{POLL_INTERVAL_S * 1000:.0f}, or longer so that polls keep the "
        f"stack busy {POLL_BUSY_SHARE:.0%} of the time at most",
        "list_page_limit": LIST_LIMIT,
        "poll": "GET /v1/task/list pages, newest first, until every unfinished task is seen",
        "function": "noop (returns None), lang PY",
        "latency": "create answered (client) → finished, taken midway between the last poll "
        "that listed the task unfinished and the first that listed it finished",
        "throughput": "finished tasks / (last finished − first create sent)",
        "floor": "per task PutItem + SendMessage, then ReceiveMessage (≤ 10) + UpdateItem "
        "start + UpdateItem complete + DeleteMessage, same thread count, own moto server",
        "time_limit_s": limit_s,
    }

    section.details["floor"] = _floor_or_error(tasks, limit_s)
    floor_rate = section.details["floor"].get("tasks_per_s")

    stack = run_stack(tasks, THREADS, idle_tasks, limit_s)
    created: list[Created] = stack["created"]
    finished: dict[str, float] = stack["finished"]
    done = [task for task in created if task.task_id in finished]
    latencies_ms = [(finished[task.task_id] - task.end) * 1000 for task in done]
    idle_ms = median(stack["idle_latency_s"]) * 1000
    section.details["stack"] = {
        "created": len(created),
        "finished": len(done),
        "create_errors": stack["create_errors"][:5],
        "create_error_count": len(stack["create_errors"]),
        "create_ms_p50": round(percentile([(t.end - t.start) * 1000 for t in created], 50), 1)
        if created
        else None,
        "idle_latency_ms": [round(s * 1000, 1) for s in stack["idle_latency_s"]],
        "polls": len(stack["poll_seconds"]),
        "poll_pages": stack["poll_pages"],
        "poll_ms_median": round(median(stack["poll_seconds"]) * 1000, 1)
        if stack["poll_seconds"]
        else None,
        "poll_interval_ms_median": round(median(stack["poll_intervals"]) * 1000, 1)
        if stack["poll_intervals"]
        else None,
        "poll_errors": stack["poll_errors"],
    }
    # Where a task's time goes in the stack, measured by the stack itself during the loaded
    # phase (taskfn.local.profiling): per task, each process's CPU, the stack's own time by
    # component, its AWS requests and moto's time by action.
    section.details["profile"] = stack.get("profile")
    if not done:
        section.summary = "not measured: no task finished through the stack in time."
        section.details["seconds"] = round(time.monotonic() - started, 1)
        return section

    first_start = min(task.start for task in created)
    rate = len(done) / (max(finished.values()) - first_start)
    section.details["stack"]["seconds"] = round(max(finished.values()) - first_start, 2)
    incomplete = (
        f"only {len(done)} of {tasks} tasks finished within {limit_s:.0f} s"
        if len(done) < tasks
        else ""
    )
    profile_note = ""
    if stack.get("profile"):
        from taskfn.local import profiling

        profile_note = "where the time goes (details.profile, measured in this run by the " \
            "stack, TASKFN_LOCAL_PROFILE): " + profiling.summary(stack["profile"])
    note = incomplete or ("" if floor_rate else "floor not measured: see details.floor")
    throughput = Figure(
        name="end-to-end throughput",
        value=round(rate, 1),
        unit="tasks/s",
        baseline=round(floor_rate, 1) if floor_rate else None,
        baseline_name="AWS-request floor: the same tasks as bare requests to moto",
        target=f"ratio >= {TARGET_RATIO}",
        note="; ".join(part for part in (note, profile_note) if part),
    )
    throughput.met = None if throughput.ratio is None else throughput.ratio >= TARGET_RATIO
    section.figures.append(throughput)
    for p in (50, 95, 99):
        section.figures.append(_latency_figure(f"create→completed p{p}", p, latencies_ms, idle_ms))
    interval_ms = section.details["stack"]["poll_interval_ms_median"] or 0.0
    versus = (
        f" against a floor of {floor_rate:.1f} ({rate / floor_rate:.2f}x)" if floor_rate else ""
    )
    section.summary = (
        f"{len(done)} no-op tasks from {THREADS} clients: {rate:.1f} tasks/s through the "
        f"stack{versus}. Create→completed is mostly queueing: p50 "
        f"{percentile(latencies_ms, 50):.0f} ms against {idle_ms:.0f} ms for one task on the "
        f"idle stack; polls came every ~{interval_ms / 1000:.1f} s, so each latency is "
        f"± ~{interval_ms / 2000:.1f} s."
    )
    section.details["seconds"] = round(time.monotonic() - started, 1)
    return section


if __name__ == "__main__":
    if sys.argv[1:] == ["--moto"]:
        moto_child()
    else:
        print(json.dumps(measure("--quick" in sys.argv).as_dict(), indent=2))
