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
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from taskfn.runtime import confinement
from taskfn.runtime.packaging import safe_extract

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # older temp dirs are leftovers of a crashed extract


class CodeCache:
    """Maps a code key to a directory holding that code, extracting each key at most once."""

    def __init__(self, root: Path, *, verify: bool | None = None):
        """`verify` (by default: when sandboxes share this process's user) checks each
        entry's content hashes before every use."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # sandboxes of users of their own get links, not paths
        self.verify = (not confinement.separate_users()) if verify is None else verify
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._sweep_stale()

    def get(self, key: str, fetch: Callable[[], bytes]) -> Path:
        """The directory for `key`; calls fetch() and extracts only if it is not there yet.

        Errors from fetch() or extraction (CodeError) propagate and nothing is cached, so the
        next call tries again.
        """
        name = dir_name(key)
        final = self.root / name
        if final.is_dir() and not self.verify:
            return final
        with self._lock_for(name):
            if final.is_dir():  # it was there, or another thread finished while we waited
                if not self.verify or self._hashes.get(name) == _hashes(final):
                    return final
                logger.warning("taskfn code cache: %s changed since it was extracted (or "
                               "was not extracted by this process); extracting it again", key)
                confinement.remove_tree(final)
            temp = self.root / f"{_TMP_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                safe_extract(fetch(), temp)
                if self.verify:
                    self._hashes[name] = _hashes(temp)
                try:
                    os.rename(temp, final)
                except OSError:
                    # Another process sharing the root won the race: its copy is complete.
                    if not final.is_dir():
                        raise
            finally:
                if temp.exists():
                    confinement.remove_tree(temp)
        return final

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
