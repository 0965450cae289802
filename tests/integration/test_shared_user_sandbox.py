"""The same attacks where the platform is not root (Lambda's process mode, a cell run as a
normal user): sandboxes share the platform's user, so what keeps them in is the parent not
being dumpable, the process-limit mark the sweep follows, and the code cache's hashes.

When the tests run as root, the platform here runs as an unprivileged user, from a copy of the
interpreter made of hard links (the real one may sit under a root-only home). When they do not
run as root, every other runtime test already runs this way, and this module runs it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskfn.runtime import confinement
from tests import hostile

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_UID = confinement.UID_BASE - 1  # not a sandbox uid: nothing sweeps it

# The platform as an unprivileged process: runs each (name, source, event) of argv[1] (a JSON
# file) with run_python or the pool, codes from a verifying cache, and prints the results.
PLATFORM = textwrap.dedent("""
    import dataclasses, json, os, sys
    from pathlib import Path
    from taskfn.runtime.codecache import CodeCache
    from taskfn.runtime.packaging import zip_from_source
    from taskfn.runtime.pool import SandboxPool
    from taskfn.runtime.python import Limits, run_python

    plan = json.loads(Path(sys.argv[1]).read_text())
    python = plan["python"]
    cache = CodeCache(Path(plan["cache"]))
    assert cache.verify and os.geteuid() != 0
    pool = SandboxPool(1, python=python)
    assert pool.wait_ready(60)
    results = []
    for step in plan["steps"]:
        archive = zip_from_source(step["source"])
        code = cache.get(step["key"], lambda: archive)
        event = {"body": step.get("body")}
        limits = Limits(timeout_s=30)
        if step["how"] == "pool":
            result = pool.run(code, event, limits=limits)
        else:
            result = run_python(code, event, limits=limits, python=python)
        results.append(dataclasses.asdict(result))
    pool.close()
    print(json.dumps(results))
""")


@dataclass
class Platform:
    python: str  # runs the copy of the interpreter
    env: dict[str, str]
    home: Path

    @property
    def work(self) -> Path:
        return self.home / "platform" if os.geteuid() == 0 else self.home

    def run(self, steps: list[dict], secret: str = "") -> list[dict]:
        plan = self.home / f"plan-{uuid.uuid4().hex}.json"
        plan.write_text(json.dumps({"python": self.python, "cache": str(self.work / "cache"),
                                    "steps": steps}))
        env = {**self.env, "TASKFN_TEST_SECRET": secret}
        as_user = {} if os.geteuid() else {"user": PLATFORM_UID, "group": PLATFORM_UID,
                                            "extra_groups": []}
        done = subprocess.run([self.python, "-c", PLATFORM, str(plan)], env=env, cwd=self.work,
                              capture_output=True, text=True, timeout=300, **as_user)
        assert done.returncode == 0, done.stderr
        assert not secret or secret not in done.stdout
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    home = Path(tempfile.mkdtemp(prefix="taskfn-shared-user-"))
    if os.geteuid():
        try:
            yield Platform(sys.executable,
                           dict(os.environ, PYTHONPATH=str(ROOT / "layers/taskfn")), home)
        finally:
            confinement.remove_tree(home)
        return
    home.chmod(0o755)
    prefix = home / "python"
    _mirror(Path(sys.base_prefix), prefix)
    binary = prefix / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    wrapper = home / "python.sh"  # the sandbox's clean environment has no library path
    wrapper.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH={prefix / "lib"} exec {binary} "$@"\n')
    wrapper.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "layers/taskfn"),
           "HOME": str(home)}
    work = home / "platform"  # the platform user's own directory (its cache goes there)
    work.mkdir()
    os.chown(work, PLATFORM_UID, PLATFORM_UID)
    try:
        yield Platform(str(wrapper), env, home)
    finally:
        confinement.remove_tree(home)


def _mirror(source: Path, target: Path) -> None:
    """The interpreter's prefix as hard links in a place every user may read."""
    for directory, dirs, files in os.walk(source):
        here = target / Path(directory).relative_to(source)
        here.mkdir(mode=0o755, exist_ok=True)
        for name in files:
            origin = Path(directory) / name
            if origin.is_symlink():
                os.symlink(os.readlink(origin), here / name)
            else:
                os.link(origin, here / name)
        for name in dirs:
            if (Path(directory) / name).is_symlink():
                os.symlink(os.readlink(Path(directory) / name), here / name)


def body_of(result: dict) -> dict:
    assert result["succeeded"], (result["failure_reason"], result["stderr"])
    return json.loads(result["body"])


@pytest.mark.parametrize("how", ["cold", "pool"])
def test_a_function_cannot_read_or_trace_a_parent_of_the_same_user(platform, how):
    secret = f"secret-{uuid.uuid4().hex}"
    (result,) = platform.run([{"key": "b1", "source": hostile.READ_PARENT, "how": how}],
                             secret=secret)
    seen = body_of(result)
    for attempt in ("environ", "mem", "ptrace"):
        assert hostile.failed(seen[attempt]), seen[attempt]


@pytest.mark.parametrize("how", ["cold", "pool"])
def test_daemons_and_fork_bombs_of_a_shared_user_are_swept(platform, how):
    daemon, bomb = platform.run([
        {"key": "b2", "source": hostile.DAEMON, "how": how},
        {"key": "b3", "source": hostile.FORK_BOMB, "how": how,
         "body": {"cap": 4 * confinement.MAX_PROCESSES}},
    ])
    assert hostile.wait_dead(body_of(daemon)["daemon"])
    pids = body_of(bomb)["pids"]
    assert 0 < len(pids) <= confinement.MAX_PROCESSES
    assert all(hostile.wait_dead(pid) for pid in pids)


def test_a_poisoned_cache_entry_of_a_shared_user_is_never_run(platform):
    victim = "def handler(event, context):\n    return 'victim'\n"
    cache = str(platform.work / "cache")
    first, attack, again = platform.run([
        {"key": "victim", "source": victim, "how": "pool"},
        {"key": "attacker", "source": hostile.POISON_CACHE, "how": "pool",
         "body": {"cache": cache}},
        {"key": "victim", "source": victim, "how": "cold"},
    ])
    assert first["body"] == "victim"
    assert "written" in body_of(attack).values()  # a shared user can write; it is caught
    assert again["body"] == "victim"


@pytest.mark.parametrize("how", ["cold", "pool"])
def test_processes_of_a_shared_user_that_change_pid_are_swept(platform, how):
    """A shared user's sweep finds a run's processes in /proc, round after round: processes
    that change pid faster than it reads must still all be gone when the run ends."""
    for _ in range(3):
        (hopper,) = platform.run([{"key": "b4", "source": hostile.PID_HOPPER, "how": how,
                                   "body": {"hoppers": 200}}])
        assert hopper["succeeded"], hopper["failure_reason"]
        if os.geteuid() == 0:  # the platform's uid has no other process once it has exited
            assert hostile.processes_of(PLATFORM_UID) == []
