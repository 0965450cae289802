"""Where the local stack's time goes, measured in the running stack: off unless the variable
TASKFN_LOCAL_PROFILE names a file (bench.end_to_end and bench.load set it for the stack they
start), and then cheap (two clock reads at each edge of a section).

Sections nest per thread (the gateway's request > the authorizer's handler > its AWS call),
and each is charged its *own* time: the wall time and this thread's CPU time while it was the
innermost section, so the figures of all sections add up without counting anything twice.
Keys are the path of names from the outermost section in, e.g. ``gateway > handler:
CreateTaskFunction > aws: dynamodb.PutItem``. An AWS call's wall time is the wait for moto
(plus this process's own interpreter lock waits); its CPU time is botocore's work here.

The file, rewritten every EVERY_S seconds and at stop (atomically: a reader never sees half
of one), holds the sections, this process's CPU time and its reaped children's (the sandboxes
that ran user code), and moto's own per-action figures (its process reports them over its
control line, local/motoserver.py). Readers take the difference of two files: a phase's
figures.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENV = "TASKFN_LOCAL_PROFILE"
EVERY_S = 0.5
SEPARATOR = " > "

_lock = threading.Lock()
_sections: dict[str, list[float]] = {}  # path -> [count, own wall s, own cpu s]
_local = threading.local()
ON = False  # read on the hot paths: a disabled section costs one global lookup


def enable() -> None:
    """Count from now on (idempotent); AWS calls are counted too (botocore patched)."""
    global ON
    ON = True
    _patch_botocore()


def disable() -> None:
    global ON
    ON = False


def reset() -> None:
    with _lock:
        _sections.clear()


def _charge(path: str, wall: float, cpu: float, count: int) -> None:
    with _lock:
        entry = _sections.get(path)
        if entry is None:
            _sections[path] = [count, wall, cpu]
        else:
            entry[0] += count
            entry[1] += wall
            entry[2] += cpu


def enter(name: str) -> None:
    """Open a section in this thread (close it with leave(), in a finally)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    stack: list[str] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    if stack:
        parent = stack[-1]
        _charge(parent, wall - _local.wall, cpu - _local.cpu, 0)
        stack.append(parent + SEPARATOR + name)
    else:
        stack.append(name)
    _local.wall, _local.cpu = wall, cpu


def leave() -> None:
    wall, cpu = time.perf_counter(), time.thread_time()
    stack: list[str] | None = getattr(_local, "stack", None)
    if not stack:
        return  # enabled inside a section: nothing was opened
    _charge(stack.pop(), wall - _local.wall, cpu - _local.cpu, 1)
    _local.wall, _local.cpu = wall, cpu


@contextmanager
def section(name: str) -> Iterator[None]:
    if not ON:
        yield
        return
    enter(name)
    try:
        yield
    finally:
        leave()


def sections() -> dict[str, dict[str, float]]:
    with _lock:
        return {path: {"count": int(count), "wall_s": round(wall, 6), "cpu_s": round(cpu, 6)}
                for path, (count, wall, cpu) in _sections.items()}


def process_cpu() -> dict[str, float]:
    """This process's CPU seconds, and its reaped children's (not moto's: it is reaped last)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self_cpu_s": round(own.ru_utime + own.ru_stime, 3),
            "children_cpu_s": round(children.ru_utime + children.ru_stime, 3)}


_patched: list[bool] = []


def _patch_botocore() -> None:
    """Every AWS call of this process, a section named after its service and operation."""
    from botocore.client import BaseClient

    with _lock:
        if _patched:
            return
        _patched.append(True)
    original = BaseClient._make_api_call

    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if not ON:
            return original(self, operation_name, api_params)
        enter(f"aws: {self.meta.service_model.service_name}.{operation_name}")
        try:
            return original(self, operation_name, api_params)
        finally:
            leave()

    BaseClient._make_api_call = _make_api_call


class Writer:
    """Rewrites the file every EVERY_S seconds, and once more at stop."""

    def __init__(self, path: Path | str, moto_stats: Callable[[], Any] | None = None):
        self.path = Path(path)
        self.moto_stats = moto_stats
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskfn-profile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(EVERY_S):
            self.write()

    def stop(self) -> None:
        """Stop the timer and write the last figures (before moto stops)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.write()

    def write(self) -> None:
        moto: Any = None
        if self.moto_stats is not None:
            try:
                moto = self.moto_stats()
            except Exception as error:  # moto gone: the stack's own figures still count
                moto = {"error": f"{type(error).__name__}: {error}"}
        figures = {"at": time.time(), "monotonic": time.monotonic(), "pid": os.getpid(),
                   "process": process_cpu(), "sections": sections(), "moto": moto}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(figures))
        os.replace(temporary, self.path)


# --- reading: a phase's figures, summed up -----------------------------------------------


def read(path: Path | str) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def difference(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """The figures of what happened between two files of one stack."""
    before = before or {}

    def minus(new: dict, old: dict) -> dict:
        out = {}
        for key, value in new.items():
            if isinstance(value, dict):
                out[key] = minus(value, old.get(key) or {})
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = value - (old.get(key) or 0)
            else:
                out[key] = value
        return out

    return {
        "seconds": after.get("monotonic", 0) - before.get("monotonic", after.get("monotonic", 0)),
        "process": minus(after.get("process") or {}, before.get("process") or {}),
        "sections": minus(after.get("sections") or {}, before.get("sections") or {}),
        "moto": minus(after.get("moto") or {}, before.get("moto") or {})
        if isinstance(after.get("moto"), dict) else after.get("moto"),
    }


def _component(path: str) -> str:
    """Which part of the stack a section's own time belongs to."""
    names = path.split(SEPARATOR)
    inner = names[-1]
    if inner.startswith("aws: "):
        return "AWS calls (botocore + waiting for moto)"
    if inner.startswith("handler:"):
        return "handler code"
    root = names[0]
    if root == "gateway":
        return "HTTP gateway"
    if root.startswith("poller:"):
        return "pollers (SQS, streams)"
    return "other"


def breakdown(phase: dict[str, Any], tasks: int) -> dict[str, Any]:
    """Per task: the stack's own time by component (own wall and CPU ms), AWS requests by
    operation, moto's time by action, and each process's CPU."""
    per = max(1, tasks)
    components: dict[str, list[float]] = {}
    handlers: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {}
    for path, figures in (phase.get("sections") or {}).items():
        if not figures.get("count") and not figures.get("wall_s"):
            continue  # nothing in this phase
        wall, cpu = figures.get("wall_s", 0.0), figures.get("cpu_s", 0.0)
        entry = components.setdefault(_component(path), [0.0, 0.0])
        entry[0] += wall
        entry[1] += cpu
        inner = path.split(SEPARATOR)[-1]
        if inner.startswith("handler:"):
            item = handlers.setdefault(inner[len("handler:"):].strip(), [0, 0.0, 0.0])
            item[0] += figures.get("count", 0)
            item[1] += wall
            item[2] += cpu
        if inner.startswith("aws: "):
            item = calls.setdefault(inner[len("aws: "):], [0, 0.0, 0.0])
            item[0] += figures.get("count", 0)
            item[1] += wall
            item[2] += cpu

    def ms(value: float) -> float:
        return round(value * 1000 / per, 2)

    moto = phase.get("moto") if isinstance(phase.get("moto"), dict) else {}
    actions = moto.get("actions") or {}
    moto_cpu = (moto.get("process") or {}).get("self_cpu_s")
    process = phase.get("process") or {}
    return {
        "tasks": tasks,
        "seconds": round(phase.get("seconds", 0.0), 2),
        "cpu_ms_per_task": {
            "stack process": ms(process.get("self_cpu_s", 0.0)),
            "moto process": ms(moto_cpu) if moto_cpu is not None else None,
            "sandboxes (user code's processes)": ms(process.get("children_cpu_s", 0.0)),
        },
        "stack_own_ms_per_task": {
            name: {"wall": ms(wall), "cpu": ms(cpu)}
            for name, (wall, cpu) in sorted(components.items(), key=lambda kv: -kv[1][0])
        },
        "handlers_own_ms_per_task": {
            name: {"calls": round(count / per, 2), "wall": ms(wall), "cpu": ms(cpu)}
            for name, (count, wall, cpu) in sorted(handlers.items(), key=lambda kv: -kv[1][1])
        },
        "aws_requests_per_task": round(sum(c for c, _, _ in calls.values()) / per, 2),
        "aws_calls_per_task": {
            name: {"calls": round(count / per, 2), "wall": ms(wall), "cpu": ms(cpu)}
            for name, (count, wall, cpu) in sorted(calls.items(), key=lambda kv: -kv[1][1])
        },
        "moto_requests_per_task": round(sum(a.get("count", 0) for a in actions.values()) / per,
                                        2),
        "moto_ms_per_task": {
            name: {"requests": round(a.get("count", 0) / per, 2),
                   "wall": ms(a.get("wall_s", 0.0)), "cpu": ms(a.get("cpu_s", 0.0))}
            for name, a in sorted(actions.items(), key=lambda kv: -kv[1].get("cpu_s", 0.0))
            if a.get("count")
        },
    }


def summary(figures: dict[str, Any], top: int = 4) -> str:
    """One paragraph of a breakdown, for a bench section's notes."""
    cpu = figures["cpu_ms_per_task"]
    parts = [f"CPU per task: moto {cpu['moto process']} ms, stack {cpu['stack process']} ms, "
             f"sandboxes {cpu['sandboxes (user code\'s processes)']} ms"]
    own = figures["stack_own_ms_per_task"]
    parts.append("stack's own CPU per task: " + ", ".join(
        f"{name} {value['cpu']} ms" for name, value in own.items()))
    moto = figures["moto_ms_per_task"]
    if moto:
        parts.append(f"moto: {figures['moto_requests_per_task']} requests a task, most CPU in "
                     + ", ".join(f"{name} {value['cpu']} ms ({value['requests']}×)"
                                 for name, value in list(moto.items())[:top]))
    return "; ".join(parts) + "."
