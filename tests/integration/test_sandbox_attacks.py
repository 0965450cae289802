"""Attacks on the process sandbox by real hostile functions in real child processes, through
run_python, the sandbox pool and the executor with its code cache. Each test is the attack
itself, and each fails on a runtime that runs user code as a plain child of the platform."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from taskfn import wiring
from taskfn.runtime import cgroups, confinement
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import Execution, Limits, run_python
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from tests import hostile

from .helpers import ALICE

LIMITS = Limits(timeout_s=30)
ROOT = Path(__file__).resolve().parents[2]

# Runs hostile code as the platform would, in a parent process of its own whose environment
# holds a secret: argv is the code directory and "cold" or "pool"; prints the Execution.
PARENT = textwrap.dedent("""
    import dataclasses, json, sys
    from pathlib import Path
    from taskfn.runtime.pool import SandboxPool
    from taskfn.runtime.python import Limits, run_python

    code, how = Path(sys.argv[1]), sys.argv[2]
    limits = Limits(timeout_s=30)
    if how == "pool":
        with SandboxPool(1) as pool:
            assert pool.wait_ready(30)
            result = pool.run(code, {}, limits=limits)
    else:
        result = run_python(code, {}, limits=limits)
    print(json.dumps(dataclasses.asdict(result)))
""")


def write_code(tmp_path: Path, source: str) -> Path:
    code = Path(tempfile.mkdtemp(dir=tmp_path))
    (code / "main.py").write_text(textwrap.dedent(source))
    return code


@pytest.fixture(params=["cold", "pool"])
def run(request, tmp_path) -> Iterator[Callable[..., Execution]]:
    """Runs a main.py source cold (run_python) or in a pre-started sandbox."""
    pool = SandboxPool(1) if request.param == "pool" else None

    def runner(source: str, event: dict | None = None) -> Execution:
        code = write_code(tmp_path, source)
        if pool is None:
            return run_python(code, event or {}, limits=LIMITS)
        assert pool.wait_ready(30)
        result = pool.run(code, event or {}, limits=LIMITS)
        assert pool.stats["warm_hits"] >= 1
        return result

    yield runner
    if pool is not None:
        pool.close()


@pytest.mark.parametrize("how", ["cold", "pool"])
def test_a_function_cannot_read_trace_or_dump_its_parent(tmp_path, how):
    secret = f"secret-{uuid.uuid4().hex}"
    code = write_code(tmp_path, hostile.READ_PARENT)
    done = subprocess.run([sys.executable, "-c", PARENT, str(code), how], cwd=ROOT,
                          env=hostile.environment_with(secret), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["succeeded"], result["failure_reason"]
    seen = json.loads(result["body"])
    assert hostile.failed(seen["environ"]), seen["environ"]
    assert hostile.failed(seen["mem"]), seen["mem"]
    assert hostile.failed(seen["ptrace"]), seen["ptrace"]
    assert secret not in done.stdout


def test_a_setsid_daemon_is_gone_when_its_run_ends(run):
    result = run(hostile.DAEMON)
    assert result.succeeded, result.failure_reason
    daemon = hostile.body(result.body)["daemon"]
    assert hostile.wait_dead(daemon)  # at once: the run's sweep killed it before returning


def test_a_fork_bomb_is_bounded_and_gone_when_its_run_ends(run):
    result = run(hostile.FORK_BOMB, {"body": {"cap": 4 * confinement.MAX_PROCESSES}})
    assert result.succeeded, result.failure_reason
    pids = hostile.body(result.body)["pids"]
    assert 0 < len(pids) < confinement.MAX_PROCESSES
    assert all(hostile.wait_dead(pid) for pid in pids)


def test_files_a_run_leaves_in_shared_temp_dirs_are_not_there_for_the_next(run):
    marker = f"taskfn-left-{uuid.uuid4().hex}"
    result = run(f"""
        def handler(event, context):
            with open("/tmp/{marker}", "w") as out:
                out.write("for whoever gets this uid next")
            return "written"
    """)
    assert result.succeeded, result.failure_reason
    left = os.path.exists(f"/tmp/{marker}")
    if left:
        os.unlink(f"/tmp/{marker}")  # a shared user's own file: there for its next run
    assert left != confinement.separate_users()


# --- the code cache through the executor ------------------------------------------------------


def function_with(source: str) -> str:
    return FunctionService.from_env().create(ALICE, NewFunction(name="f", source=source)).id


def task_of(function_id: str, body: object = None) -> str:
    data = json.dumps(body).encode()
    return TaskService.from_env().create(
        ALICE, function_id, body=body, query={}, size=len(data)).task_guid


def result_of(task_id: str) -> str:
    return TaskService.from_env().result(ALICE, task_id).body.decode()


def test_a_function_cannot_change_the_code_another_function_or_task_runs(backend):
    # The cache lives where an attacker can find it (its default is /tmp/taskfn-code).
    parent = Path(tempfile.mkdtemp())
    parent.chmod(0o755)
    cache_root = parent / "code"
    runner = SandboxPool(1)
    try:
        executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                            CodeCache(cache_root), "cell-a", get_settings(), runner.run)
        victim = function_with("def handler(event, context):\n    return 'victim'\n")
        attacker = function_with(hostile.POISON_CACHE)
        first = task_of(victim)
        assert executor.run(first) == "succeeded" and result_of(first) == "victim"

        attack = task_of(attacker, {"cache": str(cache_root)})
        assert executor.run(attack) == "succeeded"
        report = json.loads(result_of(attack))
        assert "written" not in report.values() or not confinement.separate_users()

        again = task_of(victim)
        assert executor.run(again) == "succeeded"
        assert result_of(again) == "victim"
        own = task_of(attacker, {"cache": str(cache_root)})  # its own next task, too
        assert executor.run(own) == "succeeded"
        assert result_of(own) != "poisoned"
    finally:
        runner.close()
        confinement.remove_tree(parent)


def test_a_changed_cache_entry_is_extracted_again_where_users_are_shared(tmp_path):
    """A run sharing the platform's user can write to the cache; the next use finds out."""
    from taskfn.runtime.packaging import zip_from_source

    cache = CodeCache(tmp_path / "cache", verify=True)
    archive = zip_from_source("def handler(event, context):\n    return 'built'\n")
    entry = cache.get("build-1", lambda: archive)
    main = entry / "main.py"
    main.chmod(0o644)
    main.write_text("def handler(event, context):\n    return 'poisoned'\n")
    (entry / "json.py").write_text("raise SystemExit\n")
    again = cache.get("build-1", lambda: archive)
    assert (again / "main.py").read_text().endswith("return 'built'\n")
    assert sorted(os.listdir(again)) == ["main.py"]
    assert run_python(again, {}, limits=LIMITS).body == "built"


def test_an_entry_left_by_an_earlier_process_is_not_trusted_where_users_are_shared(tmp_path):
    from taskfn.runtime.packaging import zip_from_source

    archive = zip_from_source("def handler(event, context):\n    return 'built'\n")
    first = CodeCache(tmp_path / "cache", verify=True).get("build-1", lambda: archive)
    (first / "main.py").chmod(0o644)
    (first / "main.py").write_text("def handler(event, context):\n    return 'planted'\n")
    fetched = []
    later = CodeCache(tmp_path / "cache", verify=True)  # a new process: no hashes kept
    entry = later.get("build-1", lambda: fetched.append(1) or archive)
    assert fetched == [1]
    assert (entry / "main.py").read_text().endswith("return 'built'\n")


# --- what a review's attacks found (each failed on the first version of the sandbox) --------

separate_only = pytest.mark.skipif(not confinement.separate_users(),
                                   reason="a uid of its own per sandbox needs a root parent")


@separate_only
def test_processes_that_change_pid_faster_than_proc_is_read_are_all_killed(run):
    for _ in range(3):  # the race the sweep must not lose is a matter of chance: try it often
        result = run(hostile.PID_HOPPER, {"body": {"hoppers": 200}})
        assert result.succeeded, result.failure_reason
        uid = hostile.body(result.body)["uid"]
        assert hostile.processes_of(uid) == []


@pytest.fixture
def few_descriptors() -> Iterator[None]:
    """The platform process with the usual soft limit of 1024 open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@separate_only
def test_a_tree_deeper_than_any_descriptor_limit_is_removed_and_the_user_serves_again(
        run, few_descriptors):
    result = run(hostile.DEEP_TREE, {"body": {"depth": 5000}})
    assert result.succeeded, result.failure_reason
    seen = hostile.body(result.body)
    assert not os.path.exists(seen["cwd"].split("/d/")[0])  # its whole directory is gone
    lock = os.open(confinement._LOCK_DIR / str(seen["uid"]), os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: released after its sweep
    finally:
        os.close(lock)


@separate_only
def test_a_concurrent_run_cannot_read_another_runs_staged_code(tmp_path):
    secret = uuid.uuid4().hex
    victim = write_code(tmp_path, f"SECRET = {secret!r}\nimport time\n"
                        "def handler(event, context):\n    time.sleep(1.5)\n    return 1\n")
    thief = write_code(tmp_path, hostile.STEAL_STAGED)
    with ThreadPoolExecutor(2) as threads:
        running = threads.submit(run_python, victim, {}, limits=LIMITS)
        stolen = threads.submit(run_python, thief, {"body": {"seconds": 1.2}}, limits=LIMITS)
        assert running.result().succeeded
        result = stolen.result()
    assert result.succeeded, result.failure_reason
    assert secret not in result.body


@separate_only
def test_a_concurrent_run_cannot_read_what_another_run_writes_in_the_shared_tmp(tmp_path):
    """/tmp is the machine's: most tools write there whatever TMPDIR says. What one run puts
    there must not be readable by another tenant's run beside it."""
    secret, name = uuid.uuid4().hex, f"/tmp/taskfn-victim-{uuid.uuid4().hex}"
    victim = write_code(tmp_path, f"""
        import os, subprocess, time
        def handler(event, context):
            with open({name!r}, "w") as out:
                out.write({secret!r})
            subprocess.run(["sh", "-c", "echo {secret} > {name}.sh"])
            time.sleep(2)
            return 1
    """)
    thief = write_code(tmp_path, f"""
        import time
        def handler(event, context):
            time.sleep(1)
            found = []
            for path in ({name!r}, {name + ".sh"!r}):
                try:
                    found.append(open(path).read())
                except OSError as error:
                    found.append(type(error).__name__)
            return found
    """)
    try:
        with ThreadPoolExecutor(2) as threads:
            running = threads.submit(run_python, victim, {}, limits=LIMITS)
            stolen = threads.submit(run_python, thief, {}, limits=LIMITS)
            assert running.result().succeeded
            result = stolen.result()
    finally:
        for path in (name, name + ".sh"):
            if os.path.exists(path):
                os.unlink(path)
    assert result.succeeded, result.failure_reason
    assert secret not in result.body
    # A private /tmp (a root parent) has no such file; a shared one refuses to read it.
    assert "FileNotFoundError" in result.body or "PermissionError" in result.body


@separate_only
def test_shared_memory_a_run_creates_is_gone_with_it(run):
    result = run(hostile.LEAVE_SHARED_MEMORY)
    assert result.succeeded, result.failure_reason
    seen = hostile.body(result.body)
    assert seen["segment"] >= 0, seen  # it could create one, in a namespace of its own
    with open("/proc/sysvipc/shm") as segments:
        owners = [line.split()[7] for line in segments.readlines()[1:]]  # uid column
    assert str(seen["uid"]) not in owners


def test_removing_a_tree_never_follows_a_link_or_changes_a_permission_outside(
        tmp_path, few_descriptors):
    """What a run may leave for the platform to remove: links to elsewhere, a chain deeper
    than the descriptor limit, directories it made unreadable."""
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "file").write_text("kept")
    outside.chmod(0o755)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "to-dir").symlink_to(outside)
    (tree / "to-file").symlink_to(outside / "file")
    closed = tree / "closed"
    (closed / "inner").mkdir(parents=True)
    (closed / "inner" / "x").write_text("x")
    (closed / "inner").chmod(0)
    closed.chmod(0)
    fd = os.open(tree, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.symlink(str(outside), "up", dir_fd=deeper)
        os.close(fd)
        fd = deeper
    os.close(fd)
    confinement.remove_tree(tree)
    assert not tree.exists()
    assert (outside.stat().st_mode & 0o777, (outside / "keep").stat().st_mode & 0o777) == (
        0o755, 0o755)
    assert (outside / "file").read_text() == "kept"


# --- what a second review's attacks found --------------------------------------------------

FORGE_RESULT = """
import json, os, sys

def handler(event, context):
    config = json.loads(open("/proc/self/cmdline", "rb").read().split(b"\\0")[-2])
    forged = event["body"]["forged"]
    os.write(config["result_fd"], forged.encode() + b"\\n")
    os._exit(0)
"""


@pytest.mark.parametrize("forged", [
    {"result": {"statusCode": 200, "headers": {"X-Ok": "1\r\nSet-Cookie: session=evil"},
                "body": "x", "isBase64Encoded": False}},
    {"result": {"statusCode": 200, "headers": {"Bad Name: x": "y"}, "body": "x"}},
    {"result": {"statusCode": 200, "headers": {}, "body": "y" * (7 << 20)}},
    {"result": {"statusCode": 200, "headers": {}, "body": "!!", "isBase64Encoded": True}},
])
def test_a_result_forged_on_the_result_pipe_is_checked_like_any_other(tmp_path, forged):
    result = run_python(write_code(tmp_path, FORGE_RESULT), {"body": {"forged": json.dumps(
        forged)}}, limits=LIMITS)
    assert not result.succeeded
    assert result.failure_reason.startswith("malformed result from the runtime")


def test_a_line_nested_too_deep_for_json_does_not_stop_the_result_reader(tmp_path):
    result = run_python(write_code(tmp_path, """
        import json, os

        def handler(event, context):
            config = json.loads(open("/proc/self/cmdline", "rb").read().split(b"\\0")[-2])
            os.write(config["result_fd"], b"[" * 100_000 + b"\\n")
            return "still here"
    """), {}, limits=LIMITS)
    assert result.succeeded and result.body == "still here", result.failure_reason


def test_no_unix_sockets_or_keyrings_for_a_run(tmp_path):
    """Through a Unix socket a run could hand another run its pipes (which a reader of the
    platform keeps reading); a key in a keyring would wait for the next run of its uid."""
    result = run_python(write_code(tmp_path, """
        import ctypes, os, socket

        def handler(event, context):
            refused = []
            try:
                socket.socket(socket.AF_UNIX).bind("\\0taskfn-relay")
            except PermissionError:
                refused.append("unix socket")
            libc = ctypes.CDLL(None, use_errno=True)
            number = {"x86_64": 248, "aarch64": 217}[os.uname().machine]
            if libc.syscall(number, b"user", b"k", b"secret", 6, -4) == -1:  # add_key
                refused.append("add_key")
            left, right = socket.socketpair()  # a pair of its own still works
            left.send(b"ok")
            return {"refused": refused, "pair": right.recv(2).decode()}
    """), {}, limits=LIMITS)
    assert result.succeeded, result.stderr
    assert json.loads(result.body) == {"refused": ["unix socket", "add_key"], "pair": "ok"}


def test_a_pipe_held_open_from_outside_neither_leaks_readers_nor_reads_other_runs(
        tmp_path, drop_box):
    """Something outside the run keeps the write end of its stdout: the run still ends, its
    readers stop and close their own descriptors, and no later run's output goes astray."""
    pid_file = drop_box / "pid"
    holder = write_code(tmp_path, f"""
        import os, time

        def handler(event, context):
            with open({str(pid_file)!r}, "w") as out:
                out.write(str(os.getpid()))
            time.sleep(1)
            return "held"
    """)
    threads_before = threading.active_count()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_python, holder, {}, limits=LIMITS)
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)
        held = os.open(f"/proc/{pid_file.read_text()}/fd/1", os.O_WRONLY)  # the platform's
        try:
            assert running.result().body == "held"
            speaker = write_code(tmp_path, "def handler(event, context):\n"
                                           "    print('mine ' * 50)\n    return 'spoke'\n")
            with ThreadPoolExecutor(4) as others:
                runs = [others.submit(run_python, speaker, {}, limits=LIMITS)
                        for _ in range(12)]
                with pytest.raises(BrokenPipeError):  # nobody of the platform reads it now
                    os.write(held, b"stolen?\n" * 100)
                results = [future.result() for future in runs]
        finally:
            os.close(held)
    assert all(r.stdout == "mine " * 50 + "\n" and r.body == "spoke" for r in results)
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before


@pytest.mark.skipif(cgroups.MemoryCgroup.create("taskfn-probe") is None,
                    reason="no memory cgroup this process may make")
def test_memory_no_process_maps_counts_against_the_run(tmp_path):
    """memfd files (and tmpfs, SysV segments) are in no process's address space: the run's
    cgroup bounds them with everything else."""
    result = run_python(write_code(tmp_path, """
        import os

        def handler(event, context):
            files = []
            for _ in range(16):
                fd = os.memfd_create("hoard")
                os.write(fd, b"x" * (32 << 20))
                files.append(fd)
            return len(files)
    """), {}, limits=Limits(timeout_s=30, memory_mb=128))
    assert not result.succeeded
    assert result.failure_reason.startswith("out of memory: the run's processes together")
