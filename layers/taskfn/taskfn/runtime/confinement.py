"""Who user code runs as, and how everything a run started ends with it.

The process that starts sandboxes (the executor, a cell, the local stack) holds the platform's
credentials and every tenant's code; user code is hostile. So, wherever user code runs as a
process:

- the parent is not dumpable: no child can read its environment (/proc/<pid>/environ) or its
  memory, or trace it; and it is a child subreaper: nothing a run starts can leave its subtree;
- every sandbox runs with no_new_privs (setuid programs give it nothing) and a process limit
  (RLIMIT_NPROC, which bounds a fork bomb);
- when a run ends, its sweep kills whatever the run left behind, setsid daemons included.

How a run's processes are told from everything else depends on what the parent may do:

separate users (the parent is root: the local stack, a cell run as root)
    each sandbox runs as a uid of its own, held (flock) for the sandbox's life. The kernel
    counts the process limit per uid, the sweep kills every process of that uid and removes
    what it left in /tmp, /var/tmp and /dev/shm, and code is staged in the run's directory as
    hard links to root-owned, read-only files: a run can neither change the code another run
    executes nor read another function's code, and runs cannot see or signal each other.
shared user (a parent that is not root: Lambda's process mode, a cell run as a normal user)
    sandboxes run as the parent's user. The process limit is the user's task count plus the
    allowance; it can only be lowered, so it also marks every process a sandbox starts, and
    the sweep kills the parent's adopted children that carry it. The code cache checks its
    content hashes before every run (codecache.CodeCache(verify=True)). Runs that overlap in
    one parent share a user and are not isolated from each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import random
import shutil
import signal
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# Processes (threads count too) one run may have at once, beyond those of the user it shares.
MAX_PROCESSES = int(os.environ.get("SANDBOX_MAX_PROCESSES", "256"))
# The uids of separate sandbox users: far above real users, system users and the usual
# subordinate-id ranges of containers (100000 + 65536 k), below 2^31 for tools that sign.
UID_BASE = int(os.environ.get("SANDBOX_UID_BASE", "2000000000"))
UID_COUNT = int(os.environ.get("SANDBOX_UID_COUNT", "4096"))
# World-writable places where a run's files could outlive it (for the next user of its uid).
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_LOCK_DIR = Path(os.environ.get("SANDBOX_LOCK_DIR", "/tmp/taskfn-sandbox-users"))
STAGED_PREFIX = "taskfn-code-"
_SWEEP_S = 5.0  # a sweep that cannot empty the run in this long gives up and says so

_libc = None
_hardened = False
_guard = threading.Lock()
_spawned: set[int] = set()  # sandbox leaders this process started and has not reaped yet
_mark = 0  # shared user: the highest process limit given to a sandbox so far


def prctl(option: int, value: int) -> None:
    """prctl(2) with one argument; OSError when the kernel refuses."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"prctl({option}, {value}): {os.strerror(number)}")


def harden_parent() -> None:
    """Once per process, before its first sandbox: not dumpable, and a child subreaper."""
    global _hardened
    with _guard:
        if _hardened:
            return
        prctl(PR_SET_DUMPABLE, 0)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        _hardened = True


def separate_users() -> bool:
    """Whether each sandbox gets a uid of its own: only root may give one."""
    return os.geteuid() == 0


def spawned(pid: int) -> None:
    """A sandbox leader was started; the sweeps of other runs leave it alone."""
    with _guard:
        _spawned.add(pid)


def reaped(pid: int) -> None:
    with _guard:
        _spawned.discard(pid)


@dataclass
class RunUser:
    """The identity one sandbox runs as, from its start to its sweep."""

    uid: int | None  # None: the parent's own user
    max_processes: int
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def separate(self) -> bool:
        return self.uid is not None

    def bootstrap_config(self) -> dict:
        """What the bootstrap applies to itself before anything else (see bootstrap._confine)."""
        return {"uid": self.uid, "max_processes": self.max_processes}

    def own(self, workdir: str) -> None:
        """Give the run's private directory (cwd, HOME, TMPDIR; mode 0700) to the sandbox."""
        if self.separate:
            os.chown(workdir, self.uid, self.uid)

    def stage_code(self, code_dir: Path) -> Path | None:
        """A directory of the code for a separate user, or None to run code_dir itself.

        A separate user gets the code as hard links in a directory of its own: root-owned and
        read-only, so it cannot change them, while the cache stays out of its reach (mode
        0700). A shared user runs the verified cache directory itself. The caller removes the
        staged directory when the run ends."""
        if not self.separate:
            return None
        staged = Path(tempfile.mkdtemp(prefix=STAGED_PREFIX))
        try:
            _link_tree(Path(code_dir), staged / "code")
            os.chmod(staged, 0o711)  # the sandbox reaches code/ and lists nothing
        except BaseException:
            remove_tree(staged)
            raise
        return staged

    def sweep(self) -> int:
        """Kill everything the run left, setsid daemons included, and reap what was ours;
        returns how many processes were killed. A killed process's children are adopted by
        this process (the subreaper) before it becomes a zombie, so a round that finds none
        alive has found them all."""
        deadline = time.monotonic() + _SWEEP_S
        me = os.getpid()
        killed = 0
        while True:
            alive = 0
            for pid, parent, zombie in self._processes():
                if zombie:
                    if parent == me:
                        with contextlib.suppress(ChildProcessError, OSError):
                            os.waitpid(pid, os.WNOHANG)
                    continue
                alive += 1
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            if not alive:
                break
            if time.monotonic() > deadline:
                logger.error("taskfn sandbox: %s process(es) of a run survived its sweep", alive)
                break
            time.sleep(0.001)
        if self.separate:
            _remove_files_of(self.uid)
        return killed

    def release(self) -> None:
        """The uid may serve another sandbox (call after the sweep)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _processes(self) -> list[tuple[int, int, bool]]:
        """(pid, parent, zombie) of every process this run left: a separate user's are all
        the processes of its uid; a shared user's are this process's adopted children that
        carry the sandboxes' process limit (the leaders of other runs excluded)."""
        me = os.getpid()
        with _guard:
            mark, leaders = _mark, set(_spawned)
        found = []
        for pid in _pids():
            state, parent, uid = _status(pid)
            if state is None:
                continue
            if self.separate:
                if uid != self.uid:
                    continue
            elif pid in leaders or parent != me or _process_limit(pid) > mark:
                continue
            found.append((pid, parent, state in ("Z", "X")))
        return found


def take_user() -> RunUser:
    """An identity for a new sandbox (a uid of its own when this process is root)."""
    if separate_users():
        uid, lock_fd = _take_uid()
        return RunUser(uid, MAX_PROCESSES, lock_fd)
    global _mark
    limit = _tasks_of(os.getuid()) + MAX_PROCESSES
    with _guard:
        _mark = max(_mark, limit)
    return RunUser(None, limit)


def _take_uid() -> tuple[int, int]:
    """A free uid of the range, held by an flock (other processes skip it) until released."""
    _LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    info = _LOCK_DIR.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise OSError(errno.EPERM, f"{_LOCK_DIR} must be a directory of root's, mode 0700")
    start = random.randrange(UID_COUNT)
    for offset in range(UID_COUNT):
        uid = UID_BASE + (start + offset) % UID_COUNT
        fd = os.open(_LOCK_DIR / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise OSError(errno.EAGAIN, f"all {UID_COUNT} sandbox users are busy")


def _link_tree(source: Path, target: Path) -> None:
    """Mirror source at target: new root-owned read-only directories, files as hard links
    (copies where a link cannot be made or the file is not readable by others)."""
    target.mkdir(mode=0o755)
    for directory, dirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        here = target / relative
        for name in dirs:
            (here / name).mkdir(mode=0o755)
        for name in files:
            origin = Path(directory) / name
            info = origin.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue  # only regular files are code (safe_extract makes nothing else)
            if info.st_uid == 0 and info.st_mode & 0o004 and not info.st_mode & 0o022:
                try:
                    os.link(origin, here / name)
                    continue
                except OSError:
                    pass
            shutil.copyfile(origin, here / name)
            os.chmod(here / name, 0o555 if info.st_mode & 0o111 else 0o444)
    for directory, _dirs, _files in os.walk(target, topdown=False):
        os.chmod(directory, 0o555)


def _remove_files_of(uid: int) -> None:
    """Remove what a separate user left in the world-writable directories."""
    for shared in SHARED_TMP_DIRS:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _pids() -> list[int]:
    try:
        return [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return []


def _status(pid: int) -> tuple[str | None, int, int]:
    """(state letter, parent pid, real uid) from /proc/<pid>/status; (None, -1, -1) if gone."""
    state, parent, uid = None, -1, -1
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            for line in file:
                if line.startswith(b"State:"):
                    state = line.split()[1].decode("ascii", "replace")
                elif line.startswith(b"PPid:"):
                    parent = int(line.split()[1])
                elif line.startswith(b"Uid:"):
                    uid = int(line.split()[1])
                    break  # State and PPid come before Uid
    except (OSError, ValueError, IndexError):
        return None, -1, -1
    return state, parent, uid


def _process_limit(pid: int) -> float:
    """The hard RLIMIT_NPROC of a process (infinity when unlimited or unreadable)."""
    try:
        with open(f"/proc/{pid}/limits", "rb") as file:
            for line in file:
                if line.startswith(b"Max processes"):
                    hard = line.split()[3]
                    return float("inf") if hard == b"unlimited" else int(hard)
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included) the user has: what RLIMIT_NPROC counts."""
    count = 0
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as file:
                owner = threads = 0
                for line in file:
                    if line.startswith(b"Uid:"):
                        owner = int(line.split()[1])
                    elif line.startswith(b"Threads:"):
                        threads = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        if owner == uid:
            count += threads
    return count


def remove_tree(path: str | Path) -> None:
    """Remove a directory a sandbox wrote to, even where it made parts of it unreadable or
    read-only (call it once the run's processes are gone).

    Permissions are only ever changed inside `path`, never on its parent, which may be a
    directory every user shares (/tmp); symbolic links are never followed."""
    top = os.path.abspath(path)
    try:
        os.rmdir(top)  # the common case, an empty dir, without rmtree's walk
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        shutil.rmtree(top)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass

    def open_up(directory: str) -> None:
        with contextlib.suppress(OSError):
            os.chmod(directory, stat.S_IRWXU)
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        open_up(entry.path)

    info = os.lstat(top)
    if stat.S_ISDIR(info.st_mode):
        open_up(top)
    with contextlib.suppress(OSError):
        shutil.rmtree(top)
