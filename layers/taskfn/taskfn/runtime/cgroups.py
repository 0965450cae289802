"""A memory cgroup per sandbox, where the platform may make one: the memory of a run as a whole.

Each process of a run has its own address-space limit (RLIMIT_AS), but a run may have many
processes, and memory that no process maps (memfd files, tmpfs, SysV segments) counts against
none of them. A cgroup charges all of it: the run's processes, page cache and shared memory,
together, up to the task's memory. It needs a cgroup v1 memory hierarchy this process may
write (as root on most machines); elsewhere there is none, and README.md says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

HIERARCHY = Path(os.environ.get("SANDBOX_MEMORY_CGROUP", "/sys/fs/cgroup/memory"))
# The bootstrap and the interpreter itself, beyond what the task may use.
OVERHEAD_MB = 64
_base: list[Path | None] = []


class MemoryCgroup:
    """One sandbox's cgroup: its processes, and the memory they may use together."""

    def __init__(self, path: Path):
        self.path = path
        self._kills = 0  # the kernel's count of memory kills when the job began

    @classmethod
    def create(cls, name: str) -> MemoryCgroup | None:
        """A new cgroup for a sandbox, or None where this process cannot make one."""
        base = _parent()
        if base is None:
            return None
        path = base / name
        try:
            path.mkdir(exist_ok=True)
        except OSError as error:
            logger.warning("taskfn cgroups: cannot create %s: %s", path, error)
            return None
        return cls(path)

    def add(self, pid: int) -> None:
        """Put a process (and so everything it will start) in the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self, memory_mb: int) -> None:
        """The run's memory: the task's, plus what the runtime itself needs."""
        limit = (int(memory_mb) + OVERHEAD_MB) * 1024 * 1024
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        self._kills = self._memory_kills()

    def hit_its_limit(self) -> bool:
        """Whether the kernel had to kill a process for memory since the limit was set (the
        cgroup serves one sandbox after another)."""
        return self._memory_kills() > self._kills

    def _memory_kills(self) -> int:
        try:
            for line in (self.path / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        """Delete the cgroup (once its processes are gone). Slow (the kernel takes its memory
        accounting offline): a sandbox user's cgroup is kept for the uid's next sandbox."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _parent() -> Path | None:
    """<this process's memory cgroup>/taskfn, made once; None without a writable hierarchy."""
    if _base:
        return _base[0]
    base = None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                candidate = HIERARCHY / path.lstrip("/") / "taskfn"
                candidate.mkdir(exist_ok=True)
                base = candidate
                break
    except OSError as error:
        logger.info("taskfn cgroups: no memory cgroup for sandboxes (%s)", error)
    _base.append(base)
    return base
