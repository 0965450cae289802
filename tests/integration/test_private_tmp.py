"""Every sandbox of its own user has a private /tmp (and /var/tmp, /dev/shm): the attacks on
the machine's shared temp dirs, by real functions in real child processes.

A run that pre-creates another run's predictable name in the shared /tmp (a world-writable
file, a 0777 directory) owns what the victim then writes there: umask 077 does not help, the
attacker owns the file, and fs.protected_regular may be off. Each attack below fails on a
runtime whose sandboxes share the machine's /tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from taskfn import wiring
from taskfn.runtime import confinement
from taskfn.runtime import python as runtime_python
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import Execution, Limits, run_python
from taskfn.services.executor import Executor
from taskfn.settings import get_settings

from .test_sandbox_attacks import LIMITS, function_with, result_of, task_of, write_code

pytestmark = pytest.mark.skipif(
    not confinement.separate_users(),
    reason="a private /tmp comes with a user of its own per sandbox: it needs a root parent")

# Plants `name` (a world-writable file) and `name`.d (a 0777 directory) in the shared /tmp,
# says so on stdout, and stays until told the victim has written (or for `hold` seconds).
PLANT = """
    import os, sys, time

    def handler(event, context):
        name = event["body"]["name"]
        fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o666)
        os.fchmod(fd, 0o666)
        os.close(fd)
        os.mkdir(name + ".d")
        os.chmod(name + ".d", 0o777)
        print("planted", flush=True)
        time.sleep(event["body"]["hold"])
        return sorted(os.listdir("/tmp"))
"""

# The victim: writes its secret to the predictable names, as a careful program would (its
# umask is 077; a tool that sets 022 for a file it means to share with itself, too).
VICTIM = """
    import os

    def handler(event, context):
        name, secret = event["body"]["name"], event["body"]["secret"]
        with open(name, "w") as out:
            out.write(secret)
        os.umask(0o022)
        os.makedirs(name + ".d", exist_ok=True)  # there already, on a shared /tmp
        with open(name + ".d/report.txt", "w") as out:
            out.write(secret)
        return "written"
"""

# The attacker's later run: reads what is there now.
READ_BACK = """
    def handler(event, context):
        name = event["body"]["name"]
        found = []
        for path in (name, name + ".d/report.txt"):
            try:
                with open(path) as file:
                    found.append(file.read())
            except OSError as error:
                found.append(type(error).__name__)
        return found
"""


@pytest.fixture(params=["cold", "pool"])
def run(request, tmp_path) -> Iterator[Callable[..., Execution]]:
    """Runs a main.py source cold (run_python) or in a pre-started sandbox."""
    pool = SandboxPool(1) if request.param == "pool" else None

    def runner(source: str, body: object = None, **options) -> Execution:
        code = write_code(tmp_path, source)
        if pool is None:
            return run_python(code, {"body": body}, limits=LIMITS, **options)
        assert pool.wait_ready(30)
        return pool.run(code, {"body": body}, limits=LIMITS, **options)

    yield runner
    if pool is not None:
        pool.close()


def _wait_for(seen: list[bytes], text: bytes, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if text in b"".join(seen):
            return True
        time.sleep(0.02)
    return False


def test_a_file_planted_in_the_shared_tmp_does_not_catch_another_runs_secret(tmp_path):
    """Tenant A plants /tmp/<name> (0666) and /tmp/<name>.d (0777); tenant B's run writes its
    secret there; A's next run (a sandbox of its own, while A's first still holds the names)
    reads it."""
    name, secret = f"/tmp/report-{uuid.uuid4().hex}", f"secret-{uuid.uuid4().hex}"
    planter, victim, reader = (write_code(tmp_path, source)
                               for source in (PLANT, VICTIM, READ_BACK))
    output: list[bytes] = []
    try:
        with ThreadPoolExecutor(1) as threads:
            planting = threads.submit(
                run_python, planter, {"body": {"name": name, "hold": 20}},
                limits=Limits(timeout_s=6), on_output=lambda _, chunk: output.append(chunk))
            assert _wait_for(output, b"planted", 20), b"".join(output)
            written = run_python(victim, {"body": {"name": name, "secret": secret}},
                                 limits=LIMITS)
            read = run_python(reader, {"body": {"name": name}}, limits=LIMITS)
            planting.result()  # held the names until it timed out
    finally:
        for path in (name + ".d/report.txt", name):
            if os.path.exists(path):
                os.unlink(path)
        if os.path.isdir(name + ".d"):
            os.rmdir(name + ".d")
    assert written.succeeded, written.stderr
    assert read.succeeded, read.stderr
    assert secret not in read.body
    assert json.loads(read.body) == ["FileNotFoundError", "FileNotFoundError"]


def test_a_run_has_its_own_temp_dirs_and_they_work(run):
    """What a run (and a tool it starts, which writes to /tmp whatever TMPDIR says) writes to
    /tmp, /var/tmp and /dev/shm, it reads back; what the host has there, it does not see."""
    marker = Path(tempfile.gettempdir()) / f"taskfn-host-{uuid.uuid4().hex}"
    marker.write_text("the host's")
    marker.chmod(0o644)
    try:
        result = run("""
            import multiprocessing, os, subprocess, tempfile

            def handler(event, context):
                seen = {}
                for place in ("/tmp", "/var/tmp", "/dev/shm"):
                    if not os.path.isdir(place):
                        continue
                    path = os.path.join(place, "mine.txt")
                    with open(path, "w") as out:
                        out.write("mine in " + place)
                    seen[place] = open(path).read()
                subprocess.run(["sh", "-c", "echo from-sh > /tmp/sh.txt"], check=True)
                seen["sh"] = open("/tmp/sh.txt").read().strip()
                with tempfile.NamedTemporaryFile(dir="/tmp") as named:
                    named.write(b"x")
                    named.flush()
                    seen["named"] = os.path.getsize(named.name)
                lock = multiprocessing.Lock()  # a POSIX semaphore, in /dev/shm
                with lock:
                    seen["lock"] = True
                seen["host"] = os.path.exists(event["body"]["marker"])
                seen["cwd"] = os.getcwd()
                seen["tmpdir"] = tempfile.gettempdir()
                with open("in-cwd.txt", "w") as out:
                    out.write("cwd")
                seen["in_cwd"] = open(os.path.join(seen["cwd"], "in-cwd.txt")).read()
                seen["mode"] = oct(os.stat("/tmp").st_mode & 0o7777)
                return seen
        """, {"marker": str(marker)})
    finally:
        marker.unlink()
    assert result.succeeded, result.stderr
    seen = json.loads(result.body)
    assert seen["/tmp"] == "mine in /tmp" and seen["sh"] == "from-sh"
    assert all(seen[place] == f"mine in {place}" for place in ("/var/tmp", "/dev/shm")
               if place in seen)
    assert seen["named"] == 1 and seen["lock"] is True
    assert seen["host"] is False
    assert seen["tmpdir"] == seen["cwd"] and seen["in_cwd"] == "cwd"
    assert seen["mode"] == "0o1777"
    assert not Path(seen["cwd"]).exists()  # the private temp dir is removed afterwards


def test_nothing_a_run_writes_in_its_tmp_reaches_the_hosts(run, tmp_path):
    names = [f"taskfn-private-{uuid.uuid4().hex}" for _ in range(3)]
    result = run("""
        import os

        def handler(event, context):
            names = event["body"]
            os.mkdir("/tmp/" + names[0])
            with open("/tmp/" + names[0] + "/inner", "w") as out:
                out.write("x")
            with open("/var/tmp/" + names[1], "w") as out:
                out.write("x")
            fd = os.open("/dev/shm/" + names[2], os.O_CREAT | os.O_WRONLY, 0o600)
            os.write(fd, b"x")
            os.close(fd)
            return {"listed": sorted(os.listdir("/tmp")), "cwd": os.getcwd(),
                    "code": os.path.dirname(os.path.abspath(__file__))}
    """, names)
    assert result.succeeded, result.stderr
    seen = json.loads(result.body)
    assert names[0] in seen["listed"]
    assert not os.path.exists(seen["cwd"]) and not os.path.exists(seen["code"])
    for place in confinement.SHARED_TMP_DIRS:
        if os.path.isdir(place):
            assert not set(os.listdir(place)) & set(names), place


def test_an_idle_pooled_sandbox_leaves_no_temp_dir_when_closed():
    """A pre-started sandbox has its temp dir and the directory of its (future) code before
    any job: closing the pool removes both."""
    with SandboxPool(1) as pool:
        assert pool.wait_ready(30)
        sandbox = pool._core._idle[0]
        made = [Path(sandbox.workdir), sandbox.staged]
        assert all(path is not None and path.is_dir() for path in made)
    assert not any(path.exists() for path in made)


def test_concurrent_runs_do_not_see_each_others_tmp(tmp_path):
    source = write_code(tmp_path, """
        import os, time

        def handler(event, context):
            mine = event["body"]["mine"]
            with open("/tmp/same-name.txt", "w") as out:
                out.write(mine)
            open("/tmp/" + mine, "w").close()
            time.sleep(1.5)  # the other run writes its own meanwhile
            return {"read": open("/tmp/same-name.txt").read(),
                    "listed": sorted(n for n in os.listdir("/tmp") if n.startswith("run-"))}
    """)
    marks = [f"run-{uuid.uuid4().hex}" for _ in range(2)]
    with ThreadPoolExecutor(2) as threads:
        futures = [threads.submit(run_python, source, {"body": {"mine": mark}}, limits=LIMITS)
                   for mark in marks]
        results = [future.result() for future in futures]
    for mark, result in zip(marks, results, strict=True):
        assert result.succeeded, result.stderr
        assert json.loads(result.body) == {"read": mark, "listed": [mark]}
    assert not os.path.exists("/tmp/same-name.txt")


def test_a_run_cannot_reach_the_hosts_tmp_through_what_it_holds(run):
    """cwd and the descriptors of its imports were opened before the private /tmp was
    mounted; `..` from any of them must not lead back to the machine's /tmp."""
    marker = Path(tempfile.gettempdir()) / f"taskfn-host-{uuid.uuid4().hex}"
    marker.write_text("the host's")
    marker.chmod(0o644)
    try:
        result = run("""
            import os, sys

            def handler(event, context):
                marker = os.path.basename(event["body"])
                starts = [os.getcwd(), "/proc/self/cwd", "/proc/self/root"] + [
                    p for p in sys.path if os.path.isdir(p)]
                starts += ["/proc/self/fd/" + n for n in os.listdir("/proc/self/fd")]
                found = []
                for start in starts:
                    path = start
                    for _ in range(12):
                        path = os.path.join(path, "..")
                        for tmp in ("", "tmp"):
                            try:
                                if marker in os.listdir(os.path.join(path, tmp)):
                                    found.append(start)
                            except OSError:
                                pass
                return found
        """, str(marker))
    finally:
        marker.unlink()
    assert result.succeeded, result.stderr
    assert json.loads(result.body) == []


def test_a_function_works_with_the_code_cache_under_tmp(backend):
    """The executor's code cache (by default /tmp/taskfn-code), and so the code a run imports,
    lives under the /tmp the run's own hides."""
    parent = Path(tempfile.mkdtemp())
    runner = SandboxPool(1)
    try:
        executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                            CodeCache(parent / "code"), "cell-a", get_settings(), runner.run)
        function = function_with(
            "import json\n"
            "def handler(event, context):\n"
            "    import decimal, email.mime.text  # late imports\n"
            "    with open('/tmp/x', 'w') as out:\n"
            "        out.write('ok')\n"
            "    return json.dumps({'ok': open('/tmp/x').read()})\n")
        for _ in range(2):  # the second finds it in the cache
            task = task_of(function)
            assert executor.run(task) == "succeeded"
            assert json.loads(result_of(task)) == {"ok": "ok"}
    finally:
        runner.close()
        confinement.remove_tree(parent)


# A handler that uses the interpreter's files late: a module of the environment's own
# site-packages imported only now, one of the standard library, and the interpreter itself.
LATE_IMPORTS = """
    import os, subprocess, sys

    def handler(event, context):
        import fractions, late_probe
        seen = {"probe": late_probe.VALUE, "fractions": str(fractions.Fraction(1, 3)),
                "prefix": os.path.isfile(os.path.join(sys.prefix, "pyvenv.cfg"))}
        try:
            seen["child"] = subprocess.run([sys.executable, "-c", "print(6 * 7)"],
                                           capture_output=True, text=True).stdout.strip()
        except OSError as error:
            seen["child"] = type(error).__name__
        return seen
"""


def test_the_interpreter_and_the_runtime_may_live_under_tmp(tmp_path, monkeypatch):
    """A fresh clone under /tmp: its venv (interpreter, site-packages) and the runtime's own
    files are under the /tmp that the run's private one hides; the run still has them, and
    sees nothing else of the host's /tmp."""
    clone = Path(tempfile.mkdtemp(prefix="taskfn-clone-"))
    try:
        clone.chmod(0o755)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(clone / "venv")],
                       check=True)
        site = next((clone / "venv" / "lib").glob("python*/site-packages"))
        (site / "late_probe.py").write_text("VALUE = 'from the venv'\n")
        for path in [clone, *clone.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        runtime = clone / "runtime"
        runtime.mkdir(mode=0o755)
        shutil.copy(runtime_python.BOOTSTRAP, runtime / "bootstrap.py")
        monkeypatch.setattr(runtime_python, "BOOTSTRAP", runtime / "bootstrap.py")
        python = str(clone / "venv" / "bin" / "python")
        code = write_code(tmp_path, LATE_IMPORTS)
        result = run_python(code, {}, limits=LIMITS, python=python)
        with SandboxPool(1, python=python) as pool:
            assert pool.wait_ready(30)
            pooled = pool.run(code, {}, limits=LIMITS)
            assert pool.stats["warm_hits"] == 1
    finally:
        confinement.remove_tree(clone)
    for outcome in (result, pooled):
        assert outcome.succeeded, outcome.stderr
        seen = json.loads(outcome.body)
        assert seen["probe"] == "from the venv" and seen["fractions"] == "1/3"
        assert seen["prefix"] is True
        # The venv's python is a link to the base interpreter, which may be where the
        # sandbox's user may not go (a root-only home); if it may, it runs.
        base = os.path.realpath(python)
        reachable = subprocess.run(
            ["/bin/sh", "-c", f"test -x {base}"], user=confinement.UID_BASE + 4095,
            check=False).returncode == 0
        assert seen["child"] == ("42" if reachable else "PermissionError"), seen


def test_an_idle_pooled_sandbox_whose_parent_goes_leaves_no_temp_dir(tmp_path):
    """The pool's process dies: its idle sandbox sees the end of its stdin and removes its
    own (empty) temp dir from the host's /tmp, though its view of /tmp is its own."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from taskfn.runtime.pool import SandboxPool
        pool = SandboxPool(1)
        assert pool.wait_ready(30)
        sandbox = pool._core._idle[0]
        print(sandbox.workdir, sandbox.process.pid, flush=True)
        os._exit(0)  # no clean-up: the sandbox is orphaned
    """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    out, _ = parent.communicate(timeout=60)
    workdir, pid = out.split()
    until = time.monotonic() + 10
    while os.path.exists(workdir) and time.monotonic() < until:
        time.sleep(0.05)
    assert not os.path.exists(workdir)
    with_pid = Path(f"/proc/{pid}")
    until = time.monotonic() + 10
    while with_pid.exists() and time.monotonic() < until:
        time.sleep(0.05)
    assert not with_pid.exists() or "Z" in (with_pid / "stat").read_text().split(")")[-1][:3]


def test_a_run_ends_as_before_when_it_fills_its_tmp(run):
    result = run("""
        import errno

        def handler(event, context):
            block = b"x" * (1 << 20)
            written = 0
            try:
                for index in range(4096):
                    with open(f"/tmp/fill-{index}", "wb") as out:
                        for _ in range(32):
                            out.write(block)
                            written += 1
            except OSError as error:
                return {"errno": errno.errorcode.get(error.errno), "mb": written}
            return {"mb": written}
    """)
    # Bounded: the tmpfs is full (ENOSPC), or the run's memory (which its tmpfs counts
    # against) ran out first.
    if result.succeeded:
        assert json.loads(result.body)["errno"] == "ENOSPC"
    else:
        assert "out of memory" in result.failure_reason or "MemoryError" in result.body


def test_a_local_container_jobs_command_has_its_own_tmp_too():
    """The local stand-in for a fastlane job's container runs the command in the same
    sandbox (local/containers.py runs runtime/job_command): the command and what it starts
    see the run's own /tmp, not the machine's."""
    from taskfn.local.containers import JOB_COMMAND

    marker = Path(tempfile.gettempdir()) / f"taskfn-host-{uuid.uuid4().hex}"
    marker.write_text("the host's")
    marker.chmod(0o644)
    try:
        result = run_python(JOB_COMMAND, {"argv": [
            "sh", "-c", f"echo job > /tmp/job.txt && cat /tmp/job.txt && "
                        f"(test -e {marker} && echo seen || echo hidden) && "
                        f"echo \"$TMPDIR\" && touch \"$TMPDIR/own\" && ls \"$TMPDIR\""],
            "envs": {}}, limits=LIMITS)
    finally:
        marker.unlink()
    assert result.succeeded, result.stderr
    assert json.loads(result.body) == {"exitCode": 0}
    job, seen, tmpdir, own = result.stdout.split()
    assert (job, seen, own) == ("job", "hidden", "own")
    assert not os.path.exists("/tmp/job.txt") and not os.path.exists(tmpdir)
