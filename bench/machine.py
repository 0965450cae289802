"""Which machine a run measured: ratios travel between machines, absolute values do not."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo on Linux, platform elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float | None:
    """Total RAM in GB, or None when it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _usable_cores() -> int:
    """Cores this process may run on (a container's affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def git_commit(root: Path = ROOT) -> str:
    """HEAD's commit, with "+dirty" when the tree has changes; "unknown" outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def now() -> str:
    """The run's date, UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def describe() -> dict:
    """CPU, cores, memory, Python, kernel and load: what a reader needs to weigh the values."""
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": _usable_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.system(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "load_average": load,  # 1, 5, 15 minutes at the start: a busy machine reads slower
    }


def one_line(machine: dict) -> str:
    """The machine in one line for the report's heading."""
    memory = machine.get("memory_gb")
    parts = [
        str(machine.get("cpu", "unknown CPU")),
        f"{machine.get('cores', '?')} cores",
        f"{memory:g} GB RAM" if isinstance(memory, int | float) else "RAM unknown",
        f"Python {machine.get('python', '?')}",
        f"{machine.get('os', '')} {machine.get('kernel', '')}".strip(),
    ]
    load = machine.get("load_average")
    if load:
        parts.append("load " + "/".join(f"{value:g}" for value in load))
    return ", ".join(parts)
