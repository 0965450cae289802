"""Who user code runs as, and how everything a run started ends with it.

The process that starts sandboxes (the executor, a cell, the local stack) holds the platform's
credentials and every tenant's code; user code is hostile. So, wherever user code runs as a
process:

- the parent is not dumpable: no child can read its environment (/proc/<pid>/environ) or its
  memory, or trace it; and it is a child subreaper: nothing a run starts can leave its subtree;
- every sandbox runs with no_new_privs (setuid programs give it nothing), a process limit
  (RLIMIT_NPROC, which bounds a fork bomb), and a seccomp filter (bootstrap._filter_calls)
  that refuses namespaces and under which setsid and setpgid do nothing: every process of a
  run stays in its process group, which the parent kills at once (no fork outruns that);
- when a run ends, its sweep makes sure: it kills whatever the run left behind.

How a run's processes are told from everything else depends on what the parent may do:

separate users (the parent is root: the local stack, a cell run as root)
    each sandbox runs as a uid of its own, held (flock) for the sandbox's life, in an IPC
    namespace, a memory cgroup and a cpu cgroup (runtime.cgroups) of its own, and a mount
    namespace whose /tmp, /var/tmp, /dev/shm and /run/lock are a tmpfs of its own (TMP_MB;
    bootstrap._private_tmp), with only its working dir, its staged code and the
    interpreter's files bound back in: no run sees, or plants a name in, another's. The kernel
    counts the process limit per uid; the sweep kills every process of the uid at once
    (kill(-1) as that uid) and removes what it left in the shared temp dirs; a uid whose sweep
    failed is never given out again. Code is staged as hard links to root-owned, read-only
    files, in a directory only that sandbox's group may enter: a run can neither change the
    code another run executes nor read another function's code, and runs cannot see or
    signal each other.
shared user (a parent that is not root: Lambda's process mode, a cell run as a normal user)
    sandboxes run as the parent's user. The process limit is the user's task count plus the
    allowance; it can only be lowered, so it also marks every process a sandbox starts, and
    the sweep kills the parent's adopted children that carry it. The code cache checks its
    content hashes before every run (codecache.CodeCache(verify=True)). Runs that overlap in
    one parent share a user (and the machine's /tmp: no mount namespace without root) and
    are not isolated from each other.

A shared user's runs get no cgroup: the memory of such a run as a whole is not bounded (each
process has its own address-space limit), nor its CPU (cpuCount is not enforced; the log says
so once).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from taskfn.runtime.cgroups import CpuCgroup, MemoryCgroup

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
SHARED_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# A separate user's private temp dirs (one tmpfs in place of all of those, see bootstrap.
# _private_tmp): at most this many MiB, which its memory cgroup counts too.
TMP_MB = int(os.environ.get("SANDBOX_TMP_MB", "512"))
_LOCK_DIR = Path(os.environ.get("SANDBOX_LOCK_DIR", "/tmp/taskfn-sandbox-users"))
STAGED_PREFIX = "taskfn-code-"
_SWEEP_S = 5.0  # a sweep that cannot empty the run in this long gives up and says so
_QUIET_ROUNDS = 3  # a shared user's sweep ends after this many rounds in a row found nothing
_DEPTH = 64  # removing a tree: deeper directories are moved up first (few descriptors)

_libc = None
_hardened = False
_guard = threading.Lock()
_spawned: set[int] = set()  # sandbox leaders this process started and has not reaped yet
_mark = 0  # shared user: the highest process limit given to a sandbox so far
_told_shared = False  # the log has said that shared users' runs get no cgroup


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
    cgroup: MemoryCgroup | None = None  # the run's memory as a whole, where one can be made
    cpu: CpuCgroup | None = None  # the CPUs its processes may use together, likewise

    @property
    def separate(self) -> bool:
        return self.uid is not None

    def bootstrap_config(self, code_root: Path | None = None) -> dict:
        """What the bootstrap applies to itself before anything else (see bootstrap._confine):
        a separate user also gets its private temp dirs, with the directory its code will be
        staged in (code_place) among what they must not hide."""
        config: dict = {"uid": self.uid, "max_processes": self.max_processes}
        if self.separate:
            config |= {"tmp_dirs": list(SHARED_TMP_DIRS), "tmp_mb": TMP_MB,
                       "code_root": None if code_root is None else str(code_root)}
        return config

    def enter(self, pid: int, memory_mb: int, cpu_count: int = 0) -> None:
        """Put the sandbox's leader (so the whole run) in the user's cgroups."""
        if self.cgroup is not None:
            try:
                self.cgroup.add(pid)
                self.cgroup.limit(memory_mb)
            except OSError as error:
                logger.warning("taskfn sandbox: no memory cgroup for this run: %s", error)
                self.cgroup.remove()
                self.cgroup = None
        if self.cpu is not None:
            try:
                self.cpu.add(pid)
                self.cpu.limit(cpu_count)
            except OSError as error:
                logger.warning("taskfn sandbox: no cpu cgroup for this run: %s", error)
                self.cpu.remove()
                self.cpu = None

    def limit_memory(self, memory_mb: int) -> None:
        """The job's memory, for the run as a whole (before the job is sent)."""
        if self.cgroup is not None:
            self.cgroup.limit(memory_mb)

    def limit_cpu(self, cpu_count: int) -> None:
        """The job's CPUs (0: the default), for the run as a whole (before the job is sent).
        A bound the kernel refuses (above one on this process's own cgroup) leaves that one."""
        if self.cpu is not None:
            try:
                self.cpu.limit(cpu_count)
            except OSError as error:
                logger.warning("taskfn sandbox: cpu bound of %s CPUs not set: %s", cpu_count,
                               error)

    def ran_out_of_memory(self) -> bool:
        return self.cgroup is not None and self.cgroup.hit_its_limit()

    def own(self, workdir: str) -> None:
        """Give the run's private directory (cwd, HOME, TMPDIR; mode 0700) to the sandbox."""
        if self.separate:
            os.chown(workdir, self.uid, self.uid)

    def code_place(self) -> Path | None:
        """For a separate user, the (still empty) directory its code will be staged in, made
        before the sandbox starts so that its private /tmp can show it; None otherwise. The
        caller removes it when the run ends."""
        if not self.separate:
            return None
        staged = Path(tempfile.mkdtemp(prefix=STAGED_PREFIX))
        try:
            # Only this sandbox's group may enter: the names in /tmp are no secret.
            os.chown(staged, 0, self.uid)
            os.chmod(staged, 0o750)
        except BaseException:
            remove_tree(staged)
            raise
        return staged

    def stage_code(self, code_dir: Path, staged: Path | None = None) -> Path | None:
        """A directory of the code for a separate user, or None to run code_dir itself.

        A separate user gets the code as hard links in a directory of its own (`staged`, from
        code_place, or a new one): root-owned and read-only, so it cannot change them, while
        the cache stays out of its reach (mode 0700). A shared user runs the verified cache
        directory itself. The caller removes the staged directory when the run ends."""
        if not self.separate:
            return None
        made = staged is None
        staged = self.code_place() if staged is None else staged
        try:
            _link_tree(Path(code_dir), staged / "code")
        except BaseException:
            if made:
                remove_tree(staged)
            raise
        return staged

    def sweep(self) -> bool:
        """Kill everything the run left, reap what was ours, and remove what a separate user
        left in the shared temp dirs; True when nothing is left.

        The parent has already killed the run's process group, which holds every process of
        the run (the seccomp filter keeps them there), so this normally finds nothing. Where
        it finds a separate user's process, a helper running as that uid sends kill(-1,
        SIGKILL), which kills every process of the uid at once, so that even one that changes
        pid faster than /proc can be read is caught; the rounds below then only wait for them
        to go. A shared user's processes are found in /proc, round after round (a killed
        process's children are adopted by this process before it becomes a zombie), until
        several rounds in a row find none."""
        deadline = time.monotonic() + _SWEEP_S
        me = os.getpid()
        quiet = 0
        while quiet < (1 if self.separate else _QUIET_ROUNDS):
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
            quiet = 0 if alive else quiet + 1
            if time.monotonic() > deadline:
                logger.error("taskfn sandbox: %s process(es) of a run survived its sweep", alive)
                return False
            if alive and self.separate:
                _kill_every_process_of(self.uid)
            if alive or not self.separate:
                time.sleep(0.001 if alive else 0.005)
        if self.separate:
            _remove_files_of(self.uid)
        return True

    def release(self) -> None:
        """The uid may serve another sandbox: call it only after a sweep that left nothing.
        (A uid whose sweep failed is never released: its flock stays held.)"""
        self.cgroup = None  # kept for the uid's next sandbox: making one anew costs ~20 ms
        self.cpu = None
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
        while True:
            uid, lock_fd = _take_uid()
            user = RunUser(uid, MAX_PROCESSES, lock_fd)
            # Clean before use too: a platform process that died mid-run may have left the
            # uid's processes running, and a run may have moved files out of its sweep's sight.
            if user.sweep():
                user.cgroup = MemoryCgroup.create(f"sandbox-{uid}")
                user.cpu = CpuCgroup.create(f"sandbox-{uid}")
                return user
            logger.error("taskfn sandbox: uid %s could not be cleaned; not using it", uid)
    global _mark, _told_shared
    limit = _tasks_of(os.getuid()) + MAX_PROCESSES
    with _guard:
        _mark = max(_mark, limit)
        tell, _told_shared = not _told_shared, True
    if tell:
        logger.warning("taskfn sandbox: not root, so sandboxes share this process's user and "
                       "get no cgroup: a run's memory as a whole and its cpuCount are not "
                       "enforced (each process keeps its own memory limit)")
    return RunUser(None, limit)


def _take_uid() -> tuple[int, int]:
    """A free uid of the range, held by an flock (other processes skip it) until released."""
    _LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    info = _LOCK_DIR.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise OSError(errno.EPERM, f"{_LOCK_DIR} must be a directory of root's, mode 0700")
    # The lowest free uid: few uids (and so few cgroups) serve, however many runs there are.
    for offset in range(UID_COUNT):
        uid = UID_BASE + offset
        fd = os.open(_LOCK_DIR / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise OSError(errno.EAGAIN, f"all {UID_COUNT} sandbox users are busy")


def _kill_every_process_of(uid: int) -> None:
    """kill(-1, SIGKILL) as `uid`: every process of the uid at once, none of anyone else's.
    /bin/sh's kill spares only its caller, which is not the run's."""
    try:
        subprocess.run(["/bin/sh", "-c", "kill -KILL -1"], user=uid, group=uid,
                       extra_groups=[], env={}, cwd="/", stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
                       check=False)
    except (OSError, subprocess.SubprocessError) as error:
        logger.error("taskfn sandbox: could not kill the processes of uid %s: %s", uid, error)


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
    """Remove a directory (or file) a sandbox wrote to, however deep, without following a
    symbolic link and with a few descriptors, whatever it did to it. Call it once the run's
    processes are gone.

    Directories are opened by descriptor, never by path, so nothing outside `path` is ever
    touched, even if another run rearranges what it can write to meanwhile. Root needs no
    permission bits and changes none; a shared user makes its own directories writable."""
    top = os.path.abspath(path)
    try:
        os.rmdir(top)  # the common case, an empty dir, without a walk
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            os.unlink(top)
            return
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if os.geteuid() != 0:  # a shared user's own directory, maybe made read-only
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IRWXU)
        _clear(fd)
    except Exception:  # what cannot be removed stays; it must never break a run's end
        logger.exception("taskfn sandbox: could not remove all of %s", top)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(top)


def _clear(top: int) -> None:
    """Empty the directory open at `top`: depth-first, with a stack of descriptors no deeper
    than _DEPTH; a directory below that is moved up into `top` and emptied from there."""
    lifted = 0
    # (descriptor, its name in the directory below on the stack, names still to remove)
    stack: list[tuple[int, str, list[str]]] = [(top, "", _entries(top))]
    while stack:
        fd, name, pending = stack[-1]
        if not pending:
            stack.pop()
            if stack:  # empty now: close it and remove it from its parent
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=stack[-1][0])
            continue
        entry = pending.pop()
        if not _is_directory(fd, entry):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)
            continue
        if len(stack) > _DEPTH:
            lifted += 1
            with contextlib.suppress(OSError):
                os.rename(entry, f".taskfn-deep-{lifted}", src_dir_fd=fd, dst_dir_fd=top)
                stack[0][2].append(f".taskfn-deep-{lifted}")
            continue
        child = _open_directory(fd, entry)
        if child is not None:
            stack.append((child, entry, _entries(child)))


def _entries(fd: int) -> list[str]:
    try:
        with os.scandir(fd) as entries:
            return [entry.name for entry in entries]
    except OSError:
        return []


def _is_directory(fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_directory(fd: int, name: str) -> int | None:
    """A descriptor of the directory `name` in `fd`, never through a link. Root needs no
    permission bits and changes none; a shared user first makes its own directory usable
    (through a descriptor of it, so no link is ever followed)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    if os.geteuid() == 0:
        try:
            return os.open(name, flags, dir_fd=fd)
        except OSError:
            return None
    try:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
    except OSError:
        return None
    try:
        if not stat.S_ISDIR(os.fstat(path_fd).st_mode):
            return None
        with contextlib.suppress(OSError):
            os.chmod(f"/proc/self/fd/{path_fd}", stat.S_IRWXU)
        return os.open(name, flags, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(path_fd)
