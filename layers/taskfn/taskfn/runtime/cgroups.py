"""Cgroups per sandbox, where the platform may make them: the memory and the CPU of a run as a
whole.

Memory. Each process of a run has its own address-space limit (RLIMIT_AS), but a run may have
many processes, and memory that no process maps (memfd files, tmpfs, SysV segments) counts
against none of them. A cgroup charges all of it: the run's processes, page cache and shared
memory, together, up to the task's memory. It needs a cgroup v1 memory hierarchy this process
may write (as root on most machines); elsewhere there is none, and README.md says so.

CPU. A run may use at most its task's cpuCount CPUs at once, all its processes together: the
kernel's CFS bandwidth control gives its cgroup cpuCount × PERIOD_US of CPU time per period
(cgroup v2 cpu.max "<quota> <period>", where this process's cgroup v2 offers the cpu
controller; else the v1 cpu hierarchy's cpu.cfs_quota_us and cpu.cfs_period_us). cpuCount 0,
GreenCloud's default, is DEFAULT_CPUS: one CPU, what the process-mode executor's Lambda has
(1769 MB), so that no run takes more than that from the runs beside it. Where no cpu cgroup can
be made (not root, no controller), the log says so once and cpuCount is not enforced.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

HIERARCHY = Path(os.environ.get("SANDBOX_MEMORY_CGROUP", "/sys/fs/cgroup/memory"))
CPU_HIERARCHY = Path(os.environ.get("SANDBOX_CPU_CGROUP", "/sys/fs/cgroup/cpu"))
# Where cgroup v2 is mounted: alone, or beside v1 (a hybrid system).
UNIFIED_MOUNTS = tuple(Path(p) for p in os.environ.get(
    "SANDBOX_UNIFIED_CGROUP", "/sys/fs/cgroup:/sys/fs/cgroup/unified").split(":"))
# The bootstrap and the interpreter itself, beyond what the task may use.
OVERHEAD_MB = 64
PERIOD_US = 100_000  # the kernel's default CFS period
DEFAULT_CPUS = 1
_base: list[Path | None] = []
_cpu_base: list[tuple[Path, int] | None] = []


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


def cpu_quota(cpu_count: int) -> tuple[int, int]:
    """(quota, period) in microseconds for a run of `cpu_count` CPUs (0: DEFAULT_CPUS)."""
    cpus = int(cpu_count) if int(cpu_count) > 0 else DEFAULT_CPUS
    return cpus * PERIOD_US, PERIOD_US


def cpu_max(cpu_count: int) -> str:
    """cgroup v2's cpu.max for a run of `cpu_count` CPUs: "<quota> <period>"."""
    quota, period = cpu_quota(cpu_count)
    return f"{quota} {period}"


class CpuCgroup:
    """One sandbox's cgroup of the cpu controller: the CPU its processes may use together."""

    def __init__(self, path: Path, version: int):
        self.path = path
        self.version = version  # 2: cpu.max; 1: cpu.cfs_quota_us and cpu.cfs_period_us
        self._set: str | None = None  # the bound last written, not written again

    @classmethod
    def create(cls, name: str) -> CpuCgroup | None:
        """A new cgroup for a sandbox, or None where this process cannot make one."""
        found = _cpu_parent()
        if found is None:
            return None
        base, version = found
        path = base / name
        try:
            path.mkdir(exist_ok=True)
        except OSError as error:
            logger.warning("taskfn cgroups: cannot create %s: %s", path, error)
            return None
        return cls(path, version)

    def add(self, pid: int) -> None:
        """Put a process (and so everything it will start) in the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self, cpu_count: int) -> None:
        """At most `cpu_count` CPUs (0: DEFAULT_CPUS) for the run's processes together."""
        line = cpu_max(cpu_count)
        if line == self._set:
            return
        quota, period = cpu_quota(cpu_count)
        if self.version == 2:
            (self.path / "cpu.max").write_text(line)
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(period))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        self._set = line

    def bound(self) -> tuple[int, int]:
        """(quota, period) in microseconds as the kernel has them; quota -1: no bound."""
        if self.version == 2:
            quota, period = (self.path / "cpu.max").read_text().split()
            return (-1 if quota == "max" else int(quota)), int(period)
        return (int((self.path / "cpu.cfs_quota_us").read_text()),
                int((self.path / "cpu.cfs_period_us").read_text()))

    def throttled(self) -> int:
        """How many periods the kernel has held the cgroup's processes back at its bound."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "nr_throttled":
                return int(value)
        return 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _cpu_parent() -> tuple[Path, int] | None:
    """(<this process's cpu cgroup>/taskfn, cgroup version), made once; None (and a warning
    in the log) where there is no cpu controller this process may use."""
    if _cpu_base:
        return _cpu_base[0]
    found: tuple[Path, int] | None = None
    why = "this process is in no cgroup with the cpu controller"
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            hierarchy, controllers, path = line.split(":", 2)
            if hierarchy == "0" and not controllers:
                found = found or _unified_cpu(path.lstrip("/"))
            elif "cpu" in controllers.split(",") and found is None:
                candidate = CPU_HIERARCHY / path.lstrip("/") / "taskfn"
                candidate.mkdir(exist_ok=True)
                found = (candidate, 1)
    except (OSError, ValueError) as error:
        why = str(error)
    if found is None:
        logger.warning("taskfn cgroups: no cpu cgroup for sandboxes (%s): a run's cpuCount "
                       "is not enforced", why)
    _cpu_base.append(found)
    return found


def _unified_cpu(path: str) -> tuple[Path, int] | None:
    """<own v2 cgroup>/taskfn with the cpu controller enabled for its children, or None. The
    kernel refuses to enable it below a cgroup that holds processes itself (other than the
    root): then the v1 hierarchy, if any, is used."""
    for mount in UNIFIED_MOUNTS:
        own = mount / path
        try:
            if "cpu" not in (own / "cgroup.controllers").read_text().split():
                continue
            (own / "cgroup.subtree_control").write_text("+cpu")
            base = own / "taskfn"
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text("+cpu")
        except OSError as error:
            logger.info("taskfn cgroups: cgroup v2 cpu controller not usable at %s: %s",
                        own, error)
            continue
        return base, 2
    return None
