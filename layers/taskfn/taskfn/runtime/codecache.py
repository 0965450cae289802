"""Unzip each code version once into a local directory and reuse it for every run.

A version (e.g. a build id) is immutable, so its directory never needs refreshing: it is
extracted into a temp dir and renamed into place in one atomic step. A directory under its
final name is therefore always complete; a crash mid-extract leaves only a temp dir, which is
never reused (and is swept later).

User code must not change the code another run executes. Where sandboxes run as users of their
own (runtime.confinement), the cache is root's (mode 0700) and they get hard links to its
read-only files, which they cannot change. Where they share the platform's user, nothing stops
a run from writing here, so the cache verifies: it keeps each entry's content hashes in this
process's memory (out of user code's reach) and checks them before handing the entry out; an
entry that changed is extracted again, and so is one an earlier process left on disk, whose
hashes nobody kept.

The cache is bounded (`max_bytes` on disk, Settings.code_cache_max_bytes): a warm executor
would otherwise fill /tmp with every build it ran, after which every run fails. Adding an
entry first evicts the least recently used entries that no run is using. A run holds its
entry (`use`) from before it is looked up until the run has ended, with a shared flock on the
entry's lock file (in `.locks`, out of every sandbox's reach like the rest of the cache), so
no thread or process sharing the root evicts a tree a sandbox is staging or importing from;
an evictor takes the lock exclusively, without waiting, and skips an entry it cannot get. An
entry is evicted by renaming it out of its name first, so a name only ever holds a complete
extraction, and extracting the same key again gives the same code (a build is immutable).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from taskfn.runtime import confinement
from taskfn.runtime.packaging import safe_extract

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TMP_PREFIX = ".tmp-"
_LOCKS = ".locks"
_STALE_TMP_S = 3600.0  # older temp dirs are leftovers of a crashed extract
# Half of Lambda's default 512 MB /tmp; the rest is the runs' own (Settings.code_cache_max_bytes).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class CodeCache:
    """Maps a code key to a directory holding that code, extracting each key at most once
    while it stays cached, and keeping at most `max_bytes` of entries no run is using."""

    def __init__(self, root: Path, *, verify: bool | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        """`verify` (by default: when sandboxes share this process's user) checks each
        entry's content hashes before every use."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # sandboxes of users of their own get links, not paths
        self.locks = self.root / _LOCKS
        self.locks.mkdir(mode=0o700, exist_ok=True)
        self.verify = (not confinement.separate_users()) if verify is None else verify
        self.max_bytes = max_bytes
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._sizes: dict[str, int] = {}  # bytes on disk of the entries seen, by name
        self._users: Counter[str] = Counter()  # this process's holds, by entry name
        self._evicting = threading.Lock()
        self._last_use_ns = 0
        self._sweep_stale()

    @contextlib.contextmanager
    def use(self, key: str, fetch: Callable[[], bytes]) -> Iterator[Path]:
        """The directory for `key` (see get), which nothing evicts until the block ends: run
        the code inside it."""
        name = dir_name(key)
        lock_fd = self._hold(name)
        try:
            yield self._entry(name, key, fetch)
        finally:
            self._release(name, lock_fd)

    def get(self, key: str, fetch: Callable[[], bytes]) -> Path:
        """The directory for `key`; calls fetch() and extracts only if it is not there yet.
        Not held: adding another entry may evict it (a run uses `use`).

        Errors from fetch() or extraction (CodeError) propagate and nothing is cached, so the
        next call tries again.
        """
        with self.use(key, fetch) as directory:
            return directory

    def _entry(self, name: str, key: str, fetch: Callable[[], bytes]) -> Path:
        final = self.root / name
        if final.is_dir() and not self.verify:
            return final
        with self._lock_for(name):
            if final.is_dir():  # it was there, or another thread finished while we waited
                if not self.verify or self._hashes.get(name) == _hashes(final):
                    return final
                logger.warning("taskfn code cache: %s changed since it was extracted (or "
                               "was not extracted by this process); extracting it again", key)
                self._discard(name)
            temp = self.root / f"{_TMP_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                safe_extract(fetch(), temp)
                if self.verify:
                    self._hashes[name] = _hashes(temp)
                size = _disk_bytes(temp)
                self._make_room(size, adding=name)
                try:
                    os.rename(temp, final)
                except OSError:
                    # Another process sharing the root won the race: its copy is complete.
                    if not final.is_dir():
                        raise
                with self._guard:
                    self._sizes[name] = size
            finally:
                if temp.exists():
                    confinement.remove_tree(temp)
        return final

    def _hold(self, name: str) -> int:
        """Hold the entry for one use: counted here, and a shared flock on its lock file for
        other processes. The lock file's mtime is when the entry was last used."""
        with self._guard:
            self._users[name] += 1
        try:
            lock_fd = _lock_shared(self.locks / name)
            with self._guard:
                self._last_use_ns = max(time.time_ns(), self._last_use_ns + 1)
                stamp = self._last_use_ns
            os.utime(lock_fd, ns=(stamp, stamp))
            return lock_fd
        except BaseException:
            self._let_go(name)
            raise

    def _release(self, name: str, lock_fd: int) -> None:
        """End one use; the lock file of an entry that was never cached goes too."""
        try:
            if not (self.root / name).is_dir():
                with contextlib.suppress(OSError):
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other holder
                    if _is_current(lock_fd, self.locks / name):
                        os.unlink(self.locks / name)
        finally:
            os.close(lock_fd)
            self._let_go(name)

    def _let_go(self, name: str) -> None:
        with self._guard:
            self._users[name] -= 1
            if self._users[name] <= 0:
                del self._users[name]

    def _make_room(self, incoming: int, *, adding: str) -> None:
        """Evict the least recently used entries no run holds until `incoming` more bytes fit
        in max_bytes. Entries in use stay, even past the bound: their runs need them."""
        with self._evicting:
            entries = self._entries(besides=adding)
            total = incoming + sum(size for _, _, size in entries)
            for _, name, size in sorted(entries):
                if total <= self.max_bytes:
                    break
                if self._evict(name):
                    total -= size
            if total > self.max_bytes:
                logger.warning("taskfn code cache: %d bytes over its %d, in entries in use",
                               total - self.max_bytes, self.max_bytes)

    def _entries(self, *, besides: str) -> list[tuple[int, str, int]]:
        """(last use in ns, name, bytes on disk) of every entry but `besides`, whoever
        extracted it; an entry without a lock file was last used when it was extracted."""
        found: list[tuple[int, str, int]] = []
        with os.scandir(self.root) as scan:
            names = [e.name for e in scan if not e.name.startswith(".") and e.is_dir()]
        for name in names:
            if name == besides:
                continue
            try:
                used = (self.locks / name).stat().st_mtime_ns
            except FileNotFoundError:
                used = (self.root / name).stat().st_mtime_ns
            except OSError:
                continue
            with self._guard:
                size = self._sizes.get(name)
            if size is None:
                size = _disk_bytes(self.root / name)
                with self._guard:
                    self._sizes[name] = size
            found.append((used, name, size))
        return found

    def _evict(self, name: str) -> bool:
        """Remove an entry unless a run holds it, here or in another process; True if it is
        gone. The exclusive lock is never waited for."""
        with self._guard:
            if self._users[name]:
                return False
        lock = self.locks / name
        try:
            lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _is_current(lock_fd, lock):
                return False  # evicted meanwhile by another process: theirs to count
            self._discard(name)
            os.unlink(lock)  # a holder waiting on this file finds it gone and takes the new
            logger.info("taskfn code cache: evicted %s", name)
            return True
        except OSError:  # BlockingIOError: held; otherwise it could not be moved away
            return False
        finally:
            os.close(lock_fd)

    def _discard(self, name: str) -> None:
        """Move the entry out of its name (one atomic step), then remove it: its name never
        holds a partial tree, even if the removal stops half way (the sweep finishes it)."""
        trash = self.root / f"{_TMP_PREFIX}gone-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(self.root / name, trash)
        with self._guard:
            self._hashes.pop(name, None)
            self._sizes.pop(name, None)
        confinement.remove_tree(trash)

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _sweep_stale(self) -> None:
        """Remove temp dirs left by a crash (old enough not to belong to a live extract)."""
        now = time.time()
        for entry in self.root.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - entry.lstat().st_mtime > _STALE_TMP_S:
                    confinement.remove_tree(entry)


def _lock_shared(path: Path) -> int:
    """A descriptor of the lock file at `path`, holding a shared flock on it. Waits while an
    evictor holds it; an evictor unlinks the file before letting go, so a file found gone
    (or replaced) once locked is let go and the current one taken."""
    while True:
        lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            if _is_current(lock_fd, path):
                return lock_fd
        except BaseException:
            os.close(lock_fd)
            raise
        os.close(lock_fd)


def _is_current(lock_fd: int, path: Path) -> bool:
    """Whether `path` still names the file open at `lock_fd`."""
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(lock_fd).st_ino
    except FileNotFoundError:
        return False


def _disk_bytes(directory: Path) -> int:
    """The disk space a tree takes: allocated blocks of its files and directories."""
    total = 0
    pending = [str(directory)]
    while pending:
        here = pending.pop()
        with contextlib.suppress(OSError):
            total += os.lstat(here).st_blocks * 512
            with os.scandir(here) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def _hashes(directory: Path) -> dict[str, str]:
    """Every entry under directory by relative path: a file's SHA-256, or what else it is."""
    found: dict[str, str] = {}
    pending = [Path(directory)]
    while pending:
        here = pending.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                relative = os.path.relpath(entry.path, directory)
                if entry.is_symlink():
                    found[relative] = "symlink"
                elif entry.is_dir():
                    found[relative] = "dir"
                    pending.append(Path(entry.path))
                elif entry.is_file():
                    with open(entry.path, "rb") as file:
                        found[relative] = hashlib.file_digest(file, "sha256").hexdigest()
                else:
                    found[relative] = "other"
    return found


def dir_name(key: str) -> str:
    """A safe, unique directory name for any key: readable part plus a hash of the full key."""
    key = str(key)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _UNSAFE.sub("_", key).strip("._-")[:64]
    return f"{readable}-{digest}" if readable else digest
