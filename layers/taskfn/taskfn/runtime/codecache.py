"""Unzip each code version once into a local directory and reuse it for every run.

A version (e.g. a build id) is immutable, so its directory never needs refreshing: it is
extracted into a temp dir and renamed into place in one atomic step. A directory under its
final name is therefore always complete; a crash mid-extract leaves only a temp dir, which is
never reused (and is swept later).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from taskfn.runtime.packaging import safe_extract

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 3600.0  # older temp dirs are leftovers of a crashed extract


class CodeCache:
    """Maps a code key to a directory holding that code, extracting each key at most once."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._sweep_stale()

    def get(self, key: str, fetch: Callable[[], bytes]) -> Path:
        """The directory for `key`; calls fetch() and extracts only if it is not there yet.

        Errors from fetch() or extraction (CodeError) propagate and nothing is cached, so the
        next call tries again.
        """
        name = dir_name(key)
        final = self.root / name
        if final.is_dir():
            return final
        with self._lock_for(name):
            if final.is_dir():  # another thread finished while we waited
                return final
            temp = self.root / f"{_TMP_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                safe_extract(fetch(), temp)
                try:
                    os.rename(temp, final)
                except OSError:
                    # Another process sharing the root won the race: its copy is complete.
                    if not final.is_dir():
                        raise
            finally:
                if temp.exists():
                    _remove(temp)
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
                    _remove(entry)


def dir_name(key: str) -> str:
    """A safe, unique directory name for any key: readable part plus a hash of the full key."""
    key = str(key)
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _UNSAFE.sub("_", key).strip("._-")[:64]
    return f"{readable}-{digest}" if readable else digest


def _remove(path: Path) -> None:
    """rmtree that copes with the read-only files safe_extract creates (for non-root users)."""

    def fix(function, target, _error):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            function(target)

    with contextlib.suppress(OSError):
        shutil.rmtree(path, onexc=fix)
