"""The local stack's data directory: private (0700, files 0600), and one stack's at a time.

It holds the snapshots of moto's state (tokens' hashes, code, results) and the admin token.
The lock is an flock on `lock`, held by the moto process (it writes the last snapshot, even
when the stack above it was killed), and released by the kernel when that process ends, however
it ends: a killed stack leaves no stale lock. The file says who holds it and whether it is
stopping: a new stack waits for one that is writing its last snapshot, and is refused at
once by one that runs.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK = "lock"
RUNNING, STOPPING = "running", "stopping"
# How long a new stack waits for one that is stopping (TASKFN_DATA_LOCK_WAIT_S).
LOCK_WAIT_S = 60.0
_held: dict[Path, int] = {}  # the locks this process holds, for as long as it lives


class InUse(RuntimeError):
    """Another stack has the directory."""


def prepare(directory: Path) -> Path:
    """Create the directory (0700) or make an existing one private."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def lock(directory: Path, wait_s: float | None = None) -> None:
    """Hold the directory's lock until this process ends, or raise InUse: at once when another
    stack runs on it, after up to `wait_s` when that one is stopping."""
    if wait_s is None:
        wait_s = float(os.environ.get("TASKFN_DATA_LOCK_WAIT_S", LOCK_WAIT_S))
    descriptor = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            if holder[1] != STOPPING or time.monotonic() >= deadline:
                os.close(descriptor)
                raise InUse(in_use_text(directory, *holder)) from None
            time.sleep(0.1)
            continue
        _held[directory.resolve()] = descriptor
        _say(descriptor, RUNNING)
        return


def stopping(directory: Path) -> None:
    """Say that the holder is stopping (writing its last snapshot): a new stack waits."""
    descriptor = _held.get(directory.resolve())
    if descriptor is not None:
        _say(descriptor, STOPPING)


def in_use_text(directory: Path, pid: str, state: str) -> str:
    who = f"process {pid}" if pid else "another process"
    if state == STOPPING:
        return f"{directory} is in use: a taskfn local ({who}) is still writing its data there"
    return (f"{directory} is in use by another taskfn local ({who}): stop it first, or give "
            f"this one another --data directory (or --memory)")


def _say(descriptor: int, state: str) -> None:
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()} {state}\n".encode(), 0)


def _holder(descriptor: int) -> tuple[str, str]:
    """(pid, state) as the lock's holder wrote them; empty when unknown."""
    words = os.pread(descriptor, 100, 0).decode(errors="replace").split()
    pid, state = [*words, "", ""][:2]
    return pid, state


def read_private(path: Path) -> str | None:
    """A kept secret, or None; refused when others could read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600")
    return path.read_text().strip() or None
