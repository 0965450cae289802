"""Load: 50 concurrent clients for 60 s against the local stack, then every task waited for.

The stack runs as a child (`taskfn local`, as bench.end_to_end starts it). Each client is a
thread with its own keep-alive connection, looping as fast as answers come over a mix of
requests: create a task (POST /v1/task/{functionId}, 201 {id}), read one of its own tasks
(GET /v1/task/{id}) or its result (GET /v1/task/{id}/result, a 404 until it has finished:
expected, not an error), and now and then a page of GET /v1/task/list. An error is any 5xx,
any 4xx but that 404, any connection reset, refusal or timeout: requests are never retried,
so none is hidden. The clients are spread over a few users, each with a function of its own,
so an answer given with another request's identity shows (as a 404 of a task the client made,
or a wrong result). Afterwards every task is waited for (bounded), its result checked, and the
runs counted: the function appends its task id to a file with O_APPEND (one write a run), so
an id on two lines is a task run twice. The baselines are the same requests from one client,
one at a time, on the idle stack, in the same run. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from bench.common import Figure, Section, median, percentile
from bench.end_to_end import (
    ADMIN_TOKEN,
    POLL_BUSY_SHARE,
    POLL_INTERVAL_S,
    REQUEST_TIMEOUT_S,
    START_LIMIT_S,
    Child,
    Http,
    Poller,
    Profile,
    _wait_for_build,
    start_stack,
)

CLIENTS, QUICK_CLIENTS = 50, 10
USERS, QUICK_USERS = 5, 2  # client i is user i mod USERS
LOAD_S, QUICK_LOAD_S = 60.0, 10.0
DRAIN_LIMIT_S, QUICK_DRAIN_LIMIT_S = 300.0, 120.0  # after the load: every task finished
KINDS = ("create", "get", "result", "list")
MIX = {"create": 0.30, "get": 0.25, "result": 0.40, "list": 0.05}  # of a client's requests
LIST_LIMIT = 20  # items per GET /v1/task/list: a user's look at their latest tasks
IDLE_ROUNDS, QUICK_IDLE_ROUNDS = 10, 5  # of each kind, for the baselines
VERIFY_THREADS = 4
SETTLE_S = 2.0  # after every task finished, before the runs are counted
UNFINISHED = "task has not finished yet"  # the message of a result's expected 404
SAMPLES = 10  # error samples kept in the details
TIMELINE_S = 5.0  # width of the answered-requests-over-time buckets
IDLE_CLIENT = 999  # the baselines' client number: its tasks' n are its own
RUNS_DIR = Path(__file__).resolve().parent / "results" / "tmp"

# One write per run (O_APPEND, no O_CREAT: the file is made beforehand, writable by the
# sandboxes' own users), then an answer derived from the input, so a result can be checked.
RECORDING_SOURCE = '''import os


def handler(event, context):
    body = event["body"]
    fd = os.open(body["runs"], os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (event["taskId"] + "\\n").encode())
    finally:
        os.close(fd)
    return {"taskId": event["taskId"], "n": body["n"], "square": body["n"] * body["n"]}
'''


class User(NamedTuple):
    token: str
    function_id: str


class Owned(NamedTuple):
    """A task a client created: whose it is and the n of its body."""

    user: int
    n: int


def expected_result(task_id: str, n: int) -> dict[str, Any]:
    return {"taskId": task_id, "n": n, "square": n * n}


def judge(task_id: str, owned: Owned, status: int, payload: bytes) -> str:
    """A finished task's result: "right", or what is wrong with it."""
    try:
        value = json.loads(payload)
    except ValueError:
        value = None
    if status == 200 and value == expected_result(task_id, owned.n):
        return "right"
    why = ""
    if status == 200 and isinstance(value, dict) and value.get("taskId") == task_id:
        why = f"ran with another request's body (n {value.get('n')!r}, not {owned.n}): "
    elif status == 200 and isinstance(value, dict):
        why = f"another task's result (taskId {value.get('taskId')!r}): "
    return f"{why}{status} {payload[:160]!r}"


class OneShot(Http):
    """Http without its one silent retry: a reset, refusal or timeout reaches the caller
    (who counts it), and the next request opens a new connection."""

    attempts = 1


def failure_name(error: BaseException) -> str:
    """What went wrong with a request that got no answer, in a few words."""
    if isinstance(error, http.client.RemoteDisconnected):  # before ConnectionResetError
        return "closed without an answer"
    for kind, name in (
        (ConnectionResetError, "connection reset"),
        (ConnectionRefusedError, "connection refused"),
        (BrokenPipeError, "broken pipe"),
        (TimeoutError, "timeout"),
    ):
        if isinstance(error, kind):
            return name
    return type(error).__name__


@dataclass
class Tally:
    """What one client saw; merged once every client has stopped."""

    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    answered_at: list[float] = field(default_factory=list)  # time.monotonic()
    statuses: Counter = field(default_factory=Counter)  # "result 404", "create 201"
    errors: Counter = field(default_factory=Counter)  # "create: 503", "get: timeout"
    samples: list[str] = field(default_factory=list)
    tasks: dict[str, Owned] = field(default_factory=dict)  # ids that got a 201
    wrong: dict[str, str] = field(default_factory=dict)  # id -> a result that is not right
    right: set[str] = field(default_factory=set)  # ids whose result was seen and is right

    def error(self, kind: str, what: str, detail: str = "") -> None:
        self.errors[f"{kind}: {what}"] += 1
        if len(self.samples) < SAMPLES:
            self.samples.append(f"{kind}: {what} {detail}".strip()[:300])

    def merge(self, other: Tally) -> None:
        for kind in KINDS:
            self.latencies_ms[kind] += other.latencies_ms[kind]
        self.answered_at += other.answered_at
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.samples += other.samples[: max(0, SAMPLES - len(self.samples))]
        self.tasks.update(other.tasks)
        self.wrong.update(other.wrong)
        self.right |= other.right


class Client:
    """One user's connection and its own tasks; every request recorded in its Tally."""

    def __init__(self, url: str, users: list[User], runs: Path, number: int):
        self.user = number % len(users)
        self.connection = OneShot(url, users[self.user].token)
        self.function_id = users[self.user].function_id
        self.runs = str(runs)
        self.number = number
        self.tally = Tally()
        self.created = 0
        self.task_ids: list[str] = []
        self.pending: list[str] = []  # own tasks whose result has not been seen yet

    def _send(self, kind: str, method: str, path: str, body: Any = None):
        """(status, payload), or None when the request got no answer (an error, counted)."""
        start = time.perf_counter()
        try:
            status, _, payload = self.connection.request(method, path, body)
        except (OSError, http.client.HTTPException) as error:
            self.tally.error(kind, failure_name(error), f"{method} {path}: {error}")
            return None
        self.tally.latencies_ms[kind].append((time.perf_counter() - start) * 1000)
        self.tally.answered_at.append(time.monotonic())
        self.tally.statuses[f"{kind} {status}"] += 1
        return status, payload

    def _unexpected(self, kind: str, status: int, payload: bytes, path: str) -> None:
        self.tally.error(kind, str(status), f"{path}: {payload[:160]!r}")

    def create(self) -> str | None:
        n = self.number * 1_000_000 + self.created
        self.created += 1
        path = f"/v1/task/{self.function_id}"
        answer = self._send("create", "POST", path, {"n": n, "runs": self.runs})
        if answer is None:
            return None
        status, payload = answer
        if status != 201:
            self._unexpected("create", status, payload, path)
            return None
        try:
            task_id = json.loads(payload)["id"]
        except (ValueError, KeyError, TypeError):
            self.tally.error("create", "201 without an id", repr(payload[:160]))
            return None
        self.tally.tasks[task_id] = Owned(self.user, n)
        self.task_ids.append(task_id)
        self.pending.append(task_id)
        return task_id

    def get(self, task_id: str) -> None:
        path = f"/v1/task/{task_id}"
        answer = self._send("get", "GET", path)
        if answer is None:
            return
        status, payload = answer
        if status != 200:
            self._unexpected("get", status, payload, path)
            return
        try:
            function_id = json.loads(payload).get("functionId")
        except (ValueError, AttributeError):
            function_id = None
        if function_id != self.function_id:
            self.tally.error("get", "200, not the task", f"{path}: {payload[:160]!r}")

    def result(self, task_id: str) -> bool:
        """True once the task's result has been seen (right or wrong)."""
        path = f"/v1/task/{task_id}/result"
        answer = self._send("result", "GET", path)
        if answer is None:
            return False
        status, payload = answer
        if status == 404:
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(payload).get("message") == UNFINISHED:
                    return False
            self._unexpected("result", status, payload, path)  # not found: an error
            return False
        if status >= 400:
            self._unexpected("result", status, payload, path)
        verdict = judge(task_id, self.tally.tasks[task_id], status, payload)
        if verdict == "right":
            self.tally.right.add(task_id)
        else:
            self.tally.wrong[task_id] = verdict
        return True

    def list(self) -> None:
        path = f"/v1/task/list?limit={LIST_LIMIT}"
        answer = self._send("list", "GET", path)
        if answer is None:
            return
        status, payload = answer
        if status != 200:
            self._unexpected("list", status, payload, path)
            return
        try:
            ok = isinstance(json.loads(payload), list)
        except ValueError:
            ok = False
        if not ok:
            self.tally.error("list", "200, not a list", repr(payload[:160]))

    def step(self, rng: random.Random) -> None:
        """One request of the mix (a create while the client has no task of its own)."""
        kind = "create"
        if self.task_ids:
            kind = rng.choices(KINDS, weights=[MIX[k] for k in KINDS])[0]
        if kind == "create":
            self.create()
        elif kind == "get":
            self.get(rng.choice(self.task_ids))
        elif kind == "result":
            if self.pending:
                index = rng.randrange(len(self.pending))
                if self.result(self.pending[index]):
                    self.pending[index] = self.pending[-1]
                    self.pending.pop()
            else:
                self.result(rng.choice(self.task_ids))
        else:
            self.list()

    def close(self) -> None:
        self.connection.close()


def run_load(
    url: str, users: list[User], runs: Path, clients: int, seconds: float
) -> tuple[Tally, float, float]:
    """`clients` threads for `seconds`: the merged tally, its start and end (monotonic)."""
    barrier = threading.Barrier(clients + 1, timeout=START_LIMIT_S)
    tallies: list[Tally] = []
    lock = threading.Lock()
    timing: dict[str, float] = {}

    def work(number: int) -> None:
        client = Client(url, users, runs, number)
        rng = random.Random(number)
        try:
            barrier.wait()
            while time.monotonic() < timing["deadline"]:
                client.step(rng)
        finally:
            client.close()
            with lock:
                tallies.append(client.tally)

    threads = [
        threading.Thread(target=work, args=(n,), name=f"bench-load-{n}") for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    timing["start"] = time.monotonic()
    timing["deadline"] = timing["start"] + seconds
    barrier.wait()
    for thread in threads:
        thread.join(seconds + 2 * REQUEST_TIMEOUT_S)
    end = time.monotonic()
    merged = Tally()
    with lock:
        for tally in tallies:
            merged.merge(tally)
    if any(thread.is_alive() for thread in threads):
        merged.error("load", "client stuck", "a client thread did not stop")
    return merged, timing["start"], end


def run_idle(url: str, user: User, runs: Path, rounds: int) -> Tally:
    """The baselines: one client, one request at a time; first a warm-up task waited for,
    so every handler is loaded and the function's code cached."""
    client = Client(url, [user], runs, number=IDLE_CLIENT)
    try:
        warm = client.create()
        if warm is None:
            raise RuntimeError(f"the warm-up task was not created: {client.tally.samples[:1]}")
        client.get(warm)
        client.list()
        deadline = time.monotonic() + START_LIMIT_S
        while not client.result(warm):
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up task did not finish in time")
            time.sleep(0.1)
        warm_up = client.tally  # its latencies are left out of the baselines
        client.tally = Tally(errors=warm_up.errors, samples=warm_up.samples,
                             tasks=warm_up.tasks, wrong=warm_up.wrong, right=warm_up.right)
        for _ in range(rounds):
            task_id = client.create()
            if task_id is not None:
                client.get(task_id)
                client.result(task_id)
            client.list()
        return client.tally
    finally:
        client.close()


@dataclass
class Drain:
    finished: set[str]
    never_listed: set[str]  # missing from two complete listings of its user's tasks
    seconds: float
    polls: int
    poll_pages: int
    poll_errors: int


def drain(url: str, users: list[User], tasks: dict[str, Owned], limit_s: float) -> Drain:
    """Wait until every task is listed finished, or until the limit: one poller a user
    (bench.end_to_end's, reading pages only until it has seen every unfinished task), one
    round of them at a time, paced as end_to_end paces its poller (the stack busy
    POLL_BUSY_SHARE of the time at most). A task its user's complete listing does not have,
    twice, is not waited for (its create answered with a task that is not the caller's)."""
    started = time.monotonic()
    deadline = started + limit_s
    pollers = {u: Poller(Http(url, users[u].token)) for u in {o.user for o in tasks.values()}}
    waiting = {u: {t for t, o in tasks.items() if o.user == u} for u in pollers}
    for user, ids in waiting.items():
        for task_id in ids:
            pollers[user].watch(task_id)
    missing: Counter = Counter()
    errors = 0
    try:
        while time.monotonic() < deadline:
            began = time.monotonic()
            for user, poller in pollers.items():
                ids = waiting[user]
                if not ids:
                    continue
                errors_before = poller.errors
                try:
                    poller.poll_once()
                except (OSError, http.client.HTTPException, ValueError):
                    errors += 1
                    continue
                ids.difference_update(poller.finished.keys())
                if poller.errors != errors_before:
                    continue  # a page failed: the poll may not have read every page
                for task_id in ids - poller.unfinished.keys():
                    missing[task_id] += 1  # that poll read every page: not listed at all
                    if missing[task_id] >= 2:
                        ids.discard(task_id)
            if not any(waiting.values()):
                break
            took = time.monotonic() - began
            pause = max(POLL_INTERVAL_S - took, took * (1 / POLL_BUSY_SHARE - 1))
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
    finally:
        for poller in pollers.values():
            poller.http.close()
    finished = {t for t in tasks if t in pollers[tasks[t].user].finished}
    return Drain(
        finished=finished,
        never_listed={t for t, count in missing.items() if count >= 2} - finished,
        seconds=time.monotonic() - started,
        polls=sum(len(p.poll_seconds) for p in pollers.values()),
        poll_pages=sum(p.pages for p in pollers.values()),
        poll_errors=errors + sum(p.errors for p in pollers.values()),
    )


def verify(url: str, users: list[User], tasks: dict[str, Owned]) -> dict[str, str]:
    """Every task's result, read once more as its user: id -> "right", "unfinished", or what
    is wrong; a request that gets no answer is tried up to three times ("error: ..." then)."""
    work: queue.Queue[str] = queue.Queue()
    for task_id in tasks:
        work.put(task_id)
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def read(connection: OneShot, task_id: str) -> str:
        outcome = ""
        for _ in range(3):
            try:
                status, _, payload = connection.request("GET", f"/v1/task/{task_id}/result")
            except (OSError, http.client.HTTPException) as error:
                outcome = f"error: {failure_name(error)}"
                continue
            if status == 404:
                with contextlib.suppress(ValueError, AttributeError):
                    if json.loads(payload).get("message") == UNFINISHED:
                        return "unfinished"
                return f"not the caller's task: 404 {payload[:160]!r}"
            return judge(task_id, tasks[task_id], status, payload)
        return outcome

    def worker() -> None:
        connections = [OneShot(url, user.token) for user in users]
        try:
            while True:
                try:
                    task_id = work.get_nowait()
                except queue.Empty:
                    return
                outcome = read(connections[tasks[task_id].user], task_id)
                with lock:
                    outcomes[task_id] = outcome
        finally:
            for connection in connections:
                connection.close()

    threads = [threading.Thread(target=worker) for _ in range(VERIFY_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


ACCESS_LINE = re.compile(r"^[A-Z]+ (\S+) (\d{3}) (\d+)ms$")


def stack_log(stack: Child) -> dict[str, Any]:
    """What the stack's stderr says: its access log's 5xx, and its other lines (warnings,
    tracebacks), a few of them."""
    stack.errors.seek(0)
    text = stack.errors.read().decode(errors="replace")
    server_5xx: Counter = Counter()
    other: list[str] = []
    access = 0
    exceptions: Counter = Counter()  # the last line of each traceback
    where: Counter = Counter()  # its innermost frame
    in_traceback, frame = False, ""
    for line in text.splitlines():
        match = ACCESS_LINE.match(line)
        if match:
            access += 1
            if match.group(2).startswith("5"):
                server_5xx[match.group(2)] += 1
            continue
        if not line.strip():
            continue
        other.append(line)
        if line.startswith("Traceback (most recent call last)"):
            in_traceback, frame = True, ""
        elif in_traceback and line.startswith("  File "):
            frame = line.strip()
        elif in_traceback and not line.startswith(" "):
            exceptions[line[:200]] += 1
            where[f"{line.split(':', 1)[0][:80]} at {frame}"[:300]] += 1
            in_traceback = False
    return {
        "access_log_lines": access,
        "server_5xx": dict(server_5xx),
        "other_lines": len(other),
        "other_lines_first": other[:20],
        "exceptions": dict(exceptions.most_common(10)),
        "exceptions_raised_at": dict(where.most_common(10)),
    }


def count_runs(path: Path) -> Counter:
    return Counter(line for line in path.read_text().splitlines() if line)


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p90_ms": round(percentile(values, 90), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


def _timeline(answered_at: list[float], start: float, end: float) -> list[int]:
    """Requests answered in each TIMELINE_S window of the load: a stall shows as a dip."""
    buckets = [0] * max(1, int((end - start) // TIMELINE_S) + 1)
    for moment in answered_at:
        buckets[min(len(buckets) - 1, max(0, int((moment - start) // TIMELINE_S)))] += 1
    return buckets


def _zero_figure(name: str, value: int, unit: str, note: str = "") -> Figure:
    return Figure(name=name, value=value, unit=unit, target="= 0", met=value == 0, note=note)


def _start_stack(users: int, profile: Profile | None = None) -> tuple[Child, str, list[User]]:
    """The stack as a child, and `users` users, each with a token and the recording
    function, built."""
    stack = start_stack(profile)
    try:
        url = stack.first_line.split()[-1]
        admin = Http(url, ADMIN_TOKEN)
        made: list[User] = []
        for number in range(users):
            body = {"user": f"bench-load-{number}", "scope": "user"}
            token = admin.json("POST", "/v1/tokens", body, 201)["token"]
            user = Http(url, token)
            source = {"name": f"recordruns{number}", "lang": "PY", "source": RECORDING_SOURCE}
            made.append(User(token, user.json("POST", "/v1/function", source, 201)["id"]))
            user.close()
        admin.close()
        for made_user in made:
            user = Http(url, made_user.token)
            _wait_for_build(user, made_user.function_id, time.monotonic() + START_LIMIT_S)
            user.close()
    except BaseException:
        stack.stop()
        raise
    return stack, url, made


def measure(quick: bool = False) -> Section:
    """Requests/s, latency and errors under load; tasks lost and run twice after it."""
    from taskfn.runtime.confinement import remove_tree

    clients = QUICK_CLIENTS if quick else CLIENTS
    users = QUICK_USERS if quick else USERS
    load_s = QUICK_LOAD_S if quick else LOAD_S
    drain_limit_s = QUICK_DRAIN_LIMIT_S if quick else DRAIN_LIMIT_S
    rounds = QUICK_IDLE_ROUNDS if quick else IDLE_ROUNDS
    began = time.monotonic()
    title = f"Load: {clients} clients for {load_s:.0f} s"
    section = Section(key="load", title=title)
    section.details["settings"] = {
        "clients": clients,
        "users": users,
        "user_functions": f"each user a function of its own; client i is user i mod {users}",
        "load_s": load_s,
        "mix": MIX,
        "list_page_limit": LIST_LIMIT,
        "requests": "closed loop, no pause: each client sends its next request when the "
        "last is answered; one keep-alive connection per client, never retried",
        "errors": "any 5xx, any 4xx but the 404 of an unfinished result, any connection "
        "reset, refusal or timeout",
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "drain_limit_s": drain_limit_s,
        "drain": "GET /v1/task/list pages (bench.end_to_end.Poller) until every task is "
        "listed finished, then every result read once more",
        "lost": "created (a 201) but not finished within the drain limit, or its result not "
        "the function's answer",
        "run_twice": "task ids on two or more lines of the file every run appends to "
        f"(counted {SETTLE_S:.0f} s after the last task finished)",
        "baselines": f"{rounds} requests of each kind from one client, one at a time, on "
        "the idle stack (after a warm-up task)",
        "function": "appends its taskId to a file (O_APPEND), returns {taskId, n, n²}",
    }
    # Not under /tmp: each sandbox has a /tmp of its own (a private mount), so the runs file
    # must be where every run sees the same one (bench/results/tmp/, ignored by git).
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    box = Path(tempfile.mkdtemp(prefix="taskfn-bench-load-", dir=RUNS_DIR))
    try:
        box.chmod(0o1777)  # sandboxes run as users of their own
        runs = box / "runs.txt"
        runs.touch()
        runs.chmod(0o666)
        profile = Profile()
        stack, url, made = _start_stack(users, profile)
        try:
            idle = run_idle(url, made[0], runs, rounds)
            profile_before = profile.read(fresh=True)
            load, start, end = run_load(url, made, runs, clients, load_s)
            tasks = {**idle.tasks, **load.tasks}
            # Where the time went during the load (the stack's own figures, per task created;
            # the tasks' runs go on into the drain, so theirs are partly left out).
            section.details["profile"] = profile.phase(profile_before, len(load.tasks))
            drained = drain(url, made, tasks, drain_limit_s)
            outcomes = verify(url, made, tasks)
            time.sleep(SETTLE_S)
            section.details["stack_log"] = stack_log(stack)
        finally:
            stack.stop()
            profile.close()
        run_counts = count_runs(runs)
    finally:
        remove_tree(box)

    _report(section, idle, load, start, end, tasks, drained, outcomes, run_counts)
    section.details["seconds"] = round(time.monotonic() - began, 1)
    return section


def _report(
    section: Section,
    idle: Tally,
    load: Tally,
    start: float,
    end: float,
    tasks: dict[str, Owned],
    drained: Drain,
    outcomes: dict[str, str],
    run_counts: Counter,
) -> None:
    settings = section.details["settings"]
    clients, load_s = settings["clients"], settings["load_s"]
    seconds = end - start
    every_ms = [ms for kind in KINDS for ms in load.latencies_ms[kind]]
    answered = len(every_ms)
    rate = answered / seconds if seconds > 0 else 0.0
    idle_every = [ms for kind in KINDS for ms in idle.latencies_ms[kind]]
    idle_ms = median(idle_every) if idle_every else None

    unfinished = sorted(t for t, o in outcomes.items() if o == "unfinished")
    unanswered = sorted(t for t, o in outcomes.items() if o.startswith("error: "))
    wrong = {t: o for t, o in outcomes.items() if o not in ("right", "unfinished")}
    wrong = {t: o for t, o in wrong.items() if not o.startswith("error: ")}
    # A wrong answer to a read whose task's result is right at the end: the read's error.
    misread = {t: o for t, o in {**idle.wrong, **load.wrong}.items() if t not in wrong}
    lost = set(unfinished) | set(unanswered) | set(wrong)
    twice = {t: c for t, c in run_counts.items() if c > 1}
    unknown = {t: c for t, c in run_counts.items() if t not in tasks}
    never_ran = sorted(t for t, o in outcomes.items() if o == "right" and t not in run_counts)
    listed_not_readable = sorted(t for t in drained.finished if outcomes.get(t) == "unfinished")

    errors = Counter(load.errors)
    if drained.poll_errors:
        errors["drain list: not 200 or no answer"] += drained.poll_errors
    if misread:
        errors["result: a wrong answer (the result is right later)"] += len(misread)
    for task_id in unanswered:
        errors[f"verify result: {outcomes[task_id][len('error: '):]}"] += 1
    error_count = sum(errors.values())

    section.details["load"] = {
        "seconds": round(seconds, 2),
        "requests_answered": answered,
        "requests_per_s": round(rate, 1),
        "errors": error_count,
        "errors_by_kind": dict(errors.most_common()),
        "error_samples": load.samples,
        "statuses": dict(sorted(load.statuses.items())),
        "latency": {"all": _stats(every_ms)}
        | {kind: _stats(load.latencies_ms[kind]) for kind in KINDS},
        "answered_per_window": _timeline(load.answered_at, start, end),
        "window_s": TIMELINE_S,
    }
    section.details["idle"] = {
        "latency": {"all": _stats(idle_every)}
        | {kind: _stats(idle.latencies_ms[kind]) for kind in KINDS},
        "errors_by_kind": dict(idle.errors),
        "error_samples": idle.samples,
    }
    section.details["tasks"] = {
        "created": len(tasks),
        "created_under_load": len(load.tasks),
        "created_before_load": len(idle.tasks),
        "results_seen_under_load": len(load.right) + len(load.wrong),
        "listed_finished": len(drained.finished),
        "never_listed": sorted(drained.never_listed)[:SAMPLES],
        "never_listed_count": len(drained.never_listed),
        "drain_seconds": round(drained.seconds, 1),
        "drain_polls": drained.polls,
        "drain_poll_pages": drained.poll_pages,
        "finished_right": sum(1 for o in outcomes.values() if o == "right"),
        "lost": len(lost),
        "unfinished": unfinished[:SAMPLES],
        "unfinished_count": len(unfinished),
        "unanswered": unanswered[:SAMPLES],
        "wrong_results": dict(list(wrong.items())[:SAMPLES]),
        "wrong_results_count": len(wrong),
        "wrong_answers_of_right_results": dict(list(misread.items())[:SAMPLES]),
        "listed_finished_but_result_404": listed_not_readable[:SAMPLES],
        "runs_recorded": sum(run_counts.values()),
        "run_twice": len(twice),
        "run_twice_ids": dict(list(twice.items())[:SAMPLES]),
        "runs_of_unknown_tasks": len(unknown),
        "runs_of_unknown_tasks_ids": dict(list(unknown.items())[:SAMPLES]),
        "finished_right_without_a_run": never_ran[:SAMPLES],
    }

    section.figures.append(
        Figure(
            name=f"requests/s, {clients} clients",
            value=round(rate, 1),
            unit="requests/s",
            baseline=round(1000 / idle_ms, 1) if idle_ms else None,
            baseline_name="one client, one request at a time, on the idle stack",
        )
    )
    latency_base = "median of the same requests from one client on the idle stack"
    for kind, values, base in [("all requests", every_ms, idle_every)] + [
        (kind, load.latencies_ms[kind], idle.latencies_ms[kind]) for kind in KINDS
    ]:
        if not values:
            continue
        for p in (50, 99):
            section.figures.append(
                Figure(
                    name=f"latency p{p}: {kind}",
                    value=round(percentile(values, p), 1),
                    unit="ms",
                    baseline=round(median(base), 1) if base else None,
                    baseline_name=latency_base,
                )
            )
    top = ", ".join(f"{name} ×{n}" for name, n in errors.most_common(3))
    section.figures.append(_zero_figure("errors", error_count, "requests", top))
    lost_note = ""
    if lost:
        lost_note = (
            f"{len(unfinished)} unfinished after {settings['drain_limit_s']:.0f} s, "
            f"{len(wrong)} wrong results, {len(unanswered)} unreadable"
        )
    section.figures.append(_zero_figure("tasks lost", len(lost), "tasks", lost_note))
    twice_note = f"most runs of one task: {max(twice.values())}" if twice else ""
    section.figures.append(_zero_figure("tasks run twice", len(twice), "tasks", twice_note))

    overall = section.details["load"]["latency"]["all"]
    if len(drained.finished) == len(tasks):
        finished = f"all listed finished {drained.seconds:.0f} s after the load"
    else:
        finished = f"{len(drained.finished):,} listed finished within {drained.seconds:.0f} s"
    section.summary = (
        f"{clients} clients ({settings['users']} users) for {load_s:.0f} s: "
        f"{answered:,} requests answered, "
        f"{rate:.1f} requests/s, latency p50 {overall.get('p50_ms', 0):.0f} ms and p99 "
        f"{overall.get('p99_ms', 0):.0f} ms; {error_count} errors. {len(tasks):,} tasks "
        f"created, {finished}; {len(lost)} lost, {len(twice)} run twice."
    )
    if unknown:
        section.summary += f" {len(unknown)} runs of tasks whose create got no 201."
    logged = (section.details.get("stack_log") or {}).get("exceptions") or {}
    if logged:
        first = next(iter(logged))
        section.summary += (
            f" The stack's stderr has {sum(logged.values())} tracebacks (most: {first}), "
            "none seen by a client as an error."
            if not error_count
            else f" The stack's stderr has {sum(logged.values())} tracebacks (most: {first})."
        )


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv).as_dict(), indent=2, default=str))
