"""The sandbox pool: pre-started children that keep every guarantee of a cold run_python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import CANCELLED_REASON, Execution, Limits, run_python
from tests.integration.test_python_runtime import (
    FAST,
    ONE_SECOND,
    SPAWN,
    _alive,
    _wait_dead,
    assert_failed,
    returning,
)


def _children() -> set[int]:
    """Pids of this process's live (not zombie) child processes, from /proc."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry))
    return found


def _write_code(tmp_path: Path, source: str, files: dict[str, str] | None = None) -> Path:
    code = tmp_path / f"code{len(list(tmp_path.iterdir()))}"
    code.mkdir()
    (code / "main.py").write_text(textwrap.dedent(source))
    for name, text in (files or {}).items():
        (code / name).write_text(text)
    return code


class Runner:
    """Runs code cold (run_python) or through a one-sandbox pool, checking it really was warm.

    The pool starts on first use, so a test can change the environment before it exists.
    """

    def __init__(self, tmp_path: Path, mode: str):
        self.tmp_path = tmp_path
        self.mode = mode
        self.pool: SandboxPool | None = None

    def __call__(self, source: str, event: object = None, files: dict[str, str] | None = None,
                 **kwargs) -> Execution:
        code = _write_code(self.tmp_path, source, files)
        kwargs.setdefault("limits", FAST)
        event = {} if event is None else event
        if self.mode == "cold":
            return run_python(code, event, **kwargs)
        if self.pool is None:
            self.pool = SandboxPool(1)
        assert self.pool.wait_ready(10)
        hits = self.pool.stats["warm_hits"]
        result = self.pool.run(code, event, **kwargs)
        assert self.pool.stats["warm_hits"] == hits + 1  # the pooled path ran, not a fallback
        return result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@pytest.fixture(params=["cold", "pool"])
def run(request, tmp_path):
    runner = Runner(tmp_path, request.param)
    yield runner
    runner.close()


@pytest.fixture
def pool():
    with SandboxPool(1) as sandboxes:
        assert sandboxes.wait_ready(10)
        yield sandboxes


# --- run_python's guarantees, cold and pooled ---------------------------------------------------


def test_handler_raises(run):
    result = run("""
        def handler(event, context):
            print("before the error")
            raise ValueError("boom")
    """)
    assert assert_failed(result) == {"errorType": "ValueError", "errorMessage": "boom"}
    assert result.failure_reason == "ValueError: boom"
    assert "Traceback (most recent call last)" in result.stderr
    assert "main.py" in result.stderr and "bootstrap.py" not in result.stderr
    assert result.stdout == "before the error\n"


def test_event_and_result(run):
    result = run(returning("{'statusCode': 201, 'body': event}"), event={"echo": ["me", 1]})
    assert result.succeeded and result.status_code == 201
    assert json.loads(result.body) == {"echo": ["me", 1]}
    assert result.content_type == "application/json"


def test_infinite_loop_times_out(run):
    started = time.monotonic()
    result = run("""
        import os

        def handler(event, context):
            print(os.getcwd())
            while True:
                pass
    """, limits=ONE_SECOND)
    assert time.monotonic() - started < 10
    body = assert_failed(result, status=504)
    assert result.timed_out
    assert body == {"errorType": "TimeoutError", "errorMessage": "timed out after 1 s"}
    workdir = result.stdout.strip()
    assert workdir.startswith(tempfile.gettempdir()) and not Path(workdir).exists()


def test_grandchild_is_killed_on_timeout(run):
    result = run(SPAWN.format(after="while True: time.sleep(0.01)"), limits=ONE_SECOND)
    assert result.timed_out and result.status_code == 504
    assert _wait_dead(int(result.stdout.split()[0]))


def test_cancel_kills_the_process_group_and_fails_the_run(run):
    """Setting `cancel` (the executor's task was cancelled) kills the child, warm or cold, and
    its own children long before the timeout; the run says it was cancelled."""
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = run(SPAWN.format(after="print(os.getpid(), flush=True); time.sleep(60)")
                 .replace("import subprocess", "import os, subprocess"),
                 limits=Limits(timeout_s=60), cancel=cancel)
    assert time.monotonic() - started < 20
    body = assert_failed(result)
    assert body == {"errorType": "Runtime.Cancelled", "errorMessage": CANCELLED_REASON}
    assert result.failure_reason == CANCELLED_REASON and not result.timed_out
    grandchild, child = (int(pid) for pid in result.stdout.split())
    assert _wait_dead(child) and _wait_dead(grandchild)


def test_a_run_that_finished_is_not_cancelled_afterwards(run):
    cancel = threading.Event()
    result = run(returning("'done'"), cancel=cancel)
    cancel.set()
    assert result.succeeded and result.body == "done"


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("sys.exit(3)", "process exited with code 3 before returning"),
        ("os._exit(0)", "process exited with code 0 before returning"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9"),
    ],
)
def test_exit_before_returning(run, statement, reason):
    result = run(f"""
        import os, signal, sys

        def handler(event, context):
            print("about to stop")
            {statement}
    """)
    assert assert_failed(result)["errorMessage"] == reason
    assert result.failure_reason == reason and not result.timed_out
    assert result.stdout == "about to stop\n"


def test_huge_output_is_capped_and_counted(run):
    result = run("""
        import sys

        def handler(event, context):
            chunk = "x" * 65536
            for _ in range(80):  # 5 MiB to each stream
                sys.stdout.write(chunk)
                sys.stderr.write(chunk)
            return "survived"
    """)
    assert result.succeeded and result.body == "survived"
    mib = 1024 * 1024
    assert len(result.stdout) == mib and result.stdout_dropped == 4 * mib
    assert len(result.stderr) == mib and result.stderr_dropped == 4 * mib


def test_clean_environment(run, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("TASKFN_TABLE", "platform-table")
    result = run("""
        import os, subprocess

        def handler(event, context):
            shell = subprocess.run(["env"], capture_output=True, text=True).stdout
            return {"env": dict(os.environ), "cwd": os.getcwd(), "shell": shell}
    """)
    assert result.succeeded, result.stderr
    seen = json.loads(result.body)
    env = seen["env"]
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "PYTHONUNBUFFERED"}
    assert env["HOME"] == env["TMPDIR"] == seen["cwd"]
    assert "do-not-leak" not in result.body and "platform-table" not in result.body
    assert not Path(seen["cwd"]).exists()


def test_isolated_interpreter_and_user_modules(run):
    code_source = """
        import json, os, sys

        def handler(event, context):
            return {"isolated": sys.flags.isolated, "stdin": sys.stdin.read(),
                    "argv": sys.argv, "json": json.__file__, "path0": sys.path[0]}
    """
    # The bootstrap imported json before the wait; a user json.py must not replace it.
    user_json = {"json.py": "raise ImportError('user json.py was imported')\n"}
    result = run(code_source, event={"big": "x" * 200_000}, files=user_json)
    assert result.succeeded, result.failure_reason
    seen = json.loads(result.body)
    assert (seen["isolated"], seen["stdin"]) == (1, "")
    assert seen["argv"][0].endswith("main.py")
    assert os.path.dirname(seen["argv"][0]) == seen["path0"]  # the code dir comes first
    assert not seen["json"].startswith(seen["path0"])


def test_progress_and_context(run):
    seen: list[int] = []
    result = run("""
        def handler(event, context):
            for value in (10, 20, 20, 150):
                context.set_progress(value)
            return [context.task_id, context.function_id, context.get_remaining_time_in_millis()]
    """, on_progress=seen.append, task_id="task-1", function_id="fn-9")
    assert seen == [10, 20, 100]
    task_id, function_id, left = json.loads(result.body)
    assert (task_id, function_id) == ("task-1", "fn-9")
    assert 4000 < left <= 5000


def test_memory_limit(run):
    result = run("""
        def handler(event, context):
            block = bytearray(1024 ** 3)
            return len(block)
    """, limits=Limits(timeout_s=5, memory_mb=100))
    assert_failed(result)
    assert result.failure_reason.startswith("MemoryError")
    assert "memory limit 100 MB" in result.failure_reason


def test_rlimits_come_from_the_job(run):
    result = run("""
        import resource

        def handler(event, context):
            return {name: resource.getrlimit(getattr(resource, name))
                    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE")}
    """, limits=Limits(timeout_s=2.5, memory_mb=300, max_open_files=40, max_file_bytes=1000))
    limits = json.loads(result.body)
    assert limits["RLIMIT_AS"] == [300 * 1024 * 1024] * 2
    assert limits["RLIMIT_CPU"] == [4, 5]
    assert limits["RLIMIT_NOFILE"] == [40, 40]
    assert limits["RLIMIT_FSIZE"] == [1000, 1000]


# --- what only the pool does ------------------------------------------------------------------


STATE = """
    import os, tempfile

    def handler(event, context):
        found = sorted(os.listdir("."))
        with open("left-behind.txt", "w") as out:
            out.write("secret of " + str(os.getpid()))
        return {"pid": os.getpid(), "cwd": os.getcwd(), "found": found,
                "tmp": tempfile.gettempdir(), "earlier": os.path.exists(event["earlier"])}
"""


def test_a_sandbox_is_never_reused(tmp_path, pool):
    code = _write_code(tmp_path, STATE)
    first = json.loads(pool.run(code, {"earlier": "/nonexistent"}, limits=FAST).body)
    assert pool.wait_ready(10)
    earlier = os.path.join(first["cwd"], "left-behind.txt")
    second = json.loads(pool.run(code, {"earlier": earlier}, limits=FAST).body)
    assert first["pid"] != second["pid"]
    assert first["cwd"] != second["cwd"] and first["tmp"] == first["cwd"]
    assert first["found"] == second["found"] == []  # each starts in an empty temp dir
    assert second["earlier"] is False  # task 1's file is gone, not just elsewhere
    assert not Path(first["cwd"]).exists() and not Path(second["cwd"]).exists()
    assert not _alive(first["pid"]) and not _alive(second["pid"])
    assert pool.stats["warm_hits"] == 2


def test_warm_hits_after_the_first_run(tmp_path, pool):
    code = _write_code(tmp_path, returning("'ok'"))
    for expected in (1, 2, 3):
        assert pool.run(code, {}, limits=FAST).body == "ok"
        assert pool.wait_ready(10)
        stats = pool.stats
        assert (stats["warm_hits"], stats["cold_fallbacks"]) == (expected, 0)
        assert stats["ready"] == 1 and stats["started"] == expected + 1


def test_size_zero_always_runs_cold(tmp_path):
    code = _write_code(tmp_path, returning("'cold'"))
    before = _children()
    with SandboxPool(0) as pool:
        assert _children() == before  # nothing pre-started
        assert pool.run(code, {}, limits=FAST).body == "cold"
        assert pool.stats == {"warm_hits": 0, "cold_fallbacks": 1, "started": 0,
                              "start_failures": 0, "discarded": 0, "ready": 0}


def test_cancel_reaches_a_cold_fallback(tmp_path):
    code = _write_code(tmp_path, returning("__import__('time').sleep(60)"))
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with SandboxPool(0) as pool:
        result = pool.run(code, {}, limits=Limits(timeout_s=60), cancel=cancel)
        assert pool.stats["cold_fallbacks"] == 1
    assert result.failure_reason == CANCELLED_REASON and not result.timed_out


def test_a_run_cancelled_before_it_begins_fails_at_once_and_the_pool_refills(tmp_path, pool):
    """Already set when the run begins: the sandbox is killed at once, like run_python's child,
    and a fresh one replaces it."""
    code = _write_code(tmp_path, returning("__import__('time').sleep(60)"))
    cancel = threading.Event()
    cancel.set()
    result = pool.run(code, {}, limits=Limits(timeout_s=60), cancel=cancel)
    assert result.failure_reason == CANCELLED_REASON and not result.timed_out
    assert pool.stats["warm_hits"] == 1
    assert pool.wait_ready(10)


def test_no_ready_sandbox_means_cold_start_not_waiting(tmp_path):
    """Sandboxes that never get ready must not delay runs; close() kills the one starting."""
    slow = tmp_path / "python"
    slow.write_text(f'#!/bin/sh\ncase "$*" in *wait_for_job*) exec sleep 60;; esac\n'
                    f'exec {sys.executable} "$@"\n')
    slow.chmod(0o755)
    code = _write_code(tmp_path, returning("'cold anyway'"))
    before = _children()
    pool = SandboxPool(1, python=str(slow))
    started = time.monotonic()
    result = pool.run(code, {}, limits=FAST)
    assert result.body == "cold anyway"
    assert time.monotonic() - started < 5
    assert pool.stats["cold_fallbacks"] == 1 and pool.stats["warm_hits"] == 0
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 3
    assert _children() == before


def test_a_pool_that_cannot_start_sandboxes_still_runs(tmp_path):
    code = _write_code(tmp_path, returning("1"))
    with SandboxPool(1, python="/nonexistent/python3") as pool:
        result = pool.run(code, {}, limits=FAST)
        assert result.failure_reason.startswith("could not start the Python runtime")
        until = time.monotonic() + 5
        while pool.stats["start_failures"] == 0 and time.monotonic() < until:
            time.sleep(0.01)
        assert pool.stats["start_failures"] >= 1 and pool.stats["cold_fallbacks"] == 1


def test_the_timeout_starts_when_the_job_is_sent(tmp_path, pool):
    time.sleep(1.2)  # the sandbox has been waiting longer than the run may take
    code = _write_code(tmp_path, """
        import time

        def handler(event, context):
            first = context.get_remaining_time_in_millis()
            time.sleep(0.5)
            return first
    """)
    result = pool.run(code, {}, limits=ONE_SECOND)
    assert result.succeeded, result.failure_reason
    assert 800 < int(result.body) <= 1000
    assert result.duration_ms < 1000


def test_close_leaves_no_processes_or_temp_dirs(tmp_path):
    before = _children()
    pool = SandboxPool(3)
    assert pool.wait_ready(10)
    sandboxes = _children() - before
    assert len(sandboxes) == 3
    workdirs = [os.readlink(f"/proc/{pid}/cwd") for pid in sandboxes]
    assert all(Path(workdir).is_dir() and not os.listdir(workdir) for workdir in workdirs)
    pool.close()
    pool.close()  # idempotent
    assert _children() == before
    for pid in sandboxes:  # reaped, not just killed: waitpid knows nothing of them
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert not any(Path(workdir).exists() for workdir in workdirs)
    code = _write_code(tmp_path, returning("'after close'"))
    assert pool.run(code, {}, limits=FAST).body == "after close"  # cold from now on
    assert _children() == before


def test_a_sandbox_that_died_while_idle_is_not_used(tmp_path):
    before = _children()  # other tests' pools may hold sandboxes of their own
    with SandboxPool(1) as pool:
        assert pool.wait_ready(10)
        (sandbox,) = _children() - before
        os.kill(sandbox, signal.SIGKILL)
        _wait_dead(sandbox)
        code = _write_code(tmp_path, returning("'still fine'"))
        assert pool.run(code, {}, limits=FAST).body == "still fine"
        stats = pool.stats
    # The replacement may have got ready meanwhile; either way the dead one was not used.
    assert stats["discarded"] == 1 and stats["warm_hits"] + stats["cold_fallbacks"] == 1


def test_bad_event_costs_no_sandbox(tmp_path, pool):
    code = _write_code(tmp_path, returning("1"))
    with pytest.raises(ValueError, match="not JSON serializable"):
        pool.run(code, {"x": object()})
    assert pool.stats["ready"] == 1 and pool.stats["warm_hits"] == 0


def test_concurrent_runs(tmp_path):
    code = _write_code(tmp_path, """
        import os, time

        def handler(event, context):
            time.sleep(0.05)
            return {"n": event["n"], "pid": os.getpid(), "files": os.listdir(".")}
    """)
    results: dict[int, Execution] = {}
    errors: list[BaseException] = []

    def worker(first: int) -> None:
        try:
            for n in range(first, first + 3):
                results[n] = pool.run(code, {"n": n}, limits=FAST)
        except BaseException as error:
            errors.append(error)

    before = _children()
    with SandboxPool(2) as pool:
        assert pool.wait_ready(10)
        threads = [threading.Thread(target=worker, args=(i * 10,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert len(results) == 12
        seen = {n: json.loads(result.body) for n, result in results.items()}
        assert all(body["n"] == n and body["files"] == [] for n, body in seen.items())
        assert len({body["pid"] for body in seen.values()}) == 12
        stats = pool.stats
        assert stats["warm_hits"] + stats["cold_fallbacks"] == 12 and stats["warm_hits"] >= 2
    assert _children() == before


def test_idle_sandboxes_leave_when_their_parent_dies(tmp_path):
    """No close(), no atexit: the parent is SIGKILLed; its sandboxes see EOF and go."""
    script = textwrap.dedent("""
        import os, signal, sys
        from taskfn.runtime.pool import SandboxPool

        pool = SandboxPool(2)
        assert pool.wait_ready(10)
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[1] == me:
                            print(entry, os.readlink(f"/proc/{entry}/cwd"), flush=True)
                except OSError:
                    pass
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    lines = [line.split() for line in done.stdout.splitlines()]
    assert len(lines) == 2, done.stderr
    for pid, workdir in lines:
        assert _wait_dead(int(pid))
        until = time.monotonic() + 5
        while Path(workdir).exists() and time.monotonic() < until:
            time.sleep(0.02)
        assert not Path(workdir).exists()
