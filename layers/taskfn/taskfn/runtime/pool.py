"""Pre-started sandboxes: the Python start-up of a run is paid before the task arrives.

A sandbox is a bootstrap.py child started exactly like run_python's (runtime.python.Sandbox:
clean environment, its own fresh temp dir as cwd/HOME/TMPDIR, its own session and process
group, isolated interpreter, its own user where the platform is root), which has confined
itself, imported what the bootstrap needs and blocks on stdin. A run sends it the job; only
then does it take the job's limits and import the user's code, so nothing user-specific exists
before the job. Each sandbox runs ONE task and is then killed, swept, reaped and its temp dirs
removed: no state can pass from one task to the next. A background thread keeps `size`
sandboxes ready; when none is ready, a run starts a cold child (run_python) instead of waiting.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

from taskfn.runtime.python import (
    Execution,
    Limits,
    Sandbox,
    check_run,
    run_job,
    run_python,
)

logger = logging.getLogger(__name__)

_READY_TIMEOUT_S = 30.0  # a loaded machine can be slow to start Python; beyond this, give up
_RETRY_FIRST_S = 0.5  # back-off after a failed start, doubled up to _RETRY_MAX_S
_RETRY_MAX_S = 30.0
_CLOSE_JOIN_S = 5.0
_NO_LIMITS = Limits()  # frozen, so one shared default is safe


class SandboxPool:
    """Runs user code like run_python, in a sandbox started before the task when one is ready.

    Thread-safe: any number of threads may call run() at once. Use one pool per process and
    close() it (or use it as a context manager) when done; idle sandboxes also go away with the
    pool object or at interpreter exit, and on their own if this process dies.
    """

    def __init__(self, size: int = 2, *, python: str = sys.executable):
        self._core = _Core(max(0, int(size)), python)
        # The filler thread holds only the core, so dropping the pool still closes it.
        self._finalizer = weakref.finalize(self, self._core.close)
        self._core.start()

    def run(
        self,
        code_dir: Path,
        event: dict,
        *,
        limits: Limits = _NO_LIMITS,
        task_id: str = "",
        function_id: str = "",
        on_progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Execution:
        """Same contract as run_python; the timeout starts when the job is sent.

        Setting `cancel` kills the sandbox's process group, as run_python does its child's;
        the run then fails as Runtime.Cancelled."""
        payload, timeout_s, memory_mb = check_run(event, limits)  # a caller bug costs no sandbox
        sandbox = self._core.take()
        if sandbox is None:
            return run_python(code_dir, event, limits=limits, task_id=task_id,
                              function_id=function_id, on_progress=on_progress,
                              python=self._core.python, cancel=cancel)
        # It is ours now: run_job closes it, whatever happens.
        return run_job(sandbox, code_dir, payload, limits, timeout_s, memory_mb,
                       time.monotonic(), task_id=task_id, function_id=function_id,
                       on_progress=on_progress, cancel=cancel)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until all `size` sandboxes are ready (benchmarks, tests); False on timeout."""
        return self._core.wait_ready(timeout)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: warm_hits, cold_fallbacks, started (sandboxes that got ready),
        start_failures, discarded (found dead while idle); ready = sandboxes waiting now."""
        return self._core.snapshot()

    def close(self) -> None:
        """Kill every idle sandbox and stop starting new ones; idempotent.

        Runs already in progress finish normally (each cleans up its own sandbox).
        """
        self._finalizer()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _Core:
    """The pool's state and its filler thread (kept apart from SandboxPool for weakref)."""

    def __init__(self, size: int, python: str):
        self.size = size
        self.python = python
        self._cond = threading.Condition()
        self._idle: deque[Sandbox] = deque()
        self._pending: Sandbox | None = None  # being started; close() kills it
        self._starting = 0
        self._closed = False
        self._filler: threading.Thread | None = None
        self._stats = dict.fromkeys(
            ("warm_hits", "cold_fallbacks", "started", "start_failures", "discarded"), 0)

    def start(self) -> None:
        if self.size:
            self._filler = threading.Thread(target=self._fill, daemon=True,
                                            name="taskfn-sandbox-filler")
            self._filler.start()

    def take(self) -> Sandbox | None:
        """A ready sandbox (oldest first), or None at once when there is none."""
        while True:
            with self._cond:
                sandbox = self._idle.popleft() if self._idle and not self._closed else None
                if sandbox is None:
                    self._stats["cold_fallbacks"] += 1
                    return None
                self._cond.notify_all()  # the filler starts a replacement
            if sandbox.alive():
                with self._cond:
                    self._stats["warm_hits"] += 1
                return sandbox
            logger.warning("taskfn pool: idle sandbox %s had died; discarding it",
                           sandbox.process.pid)
            sandbox.close()
            with self._cond:
                self._stats["discarded"] += 1

    def wait_ready(self, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: self._closed or len(self._idle) >= self.size, timeout
            ) and not self._closed

    def snapshot(self) -> dict[str, int]:
        with self._cond:
            return {**self._stats, "ready": len(self._idle)}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            if self._pending is not None:
                self._pending.kill()  # not reaped yet: the filler reaps it, under this rule
            self._cond.notify_all()
        for sandbox in idle:
            sandbox.close()
        filler = self._filler
        if filler is not None and filler is not threading.current_thread():
            filler.join(_CLOSE_JOIN_S)

    def _fill(self) -> None:
        """Keep `size` sandboxes ready, one start at a time, until closed."""
        try:
            self._fill_loop()
        except Exception:  # the pool then only runs cold; that must be visible in the logs
            logger.exception("taskfn pool: the sandbox filler stopped")

    def _fill_loop(self) -> None:
        retry = _RETRY_FIRST_S
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closed or len(self._idle) + self._starting < self.size)
                if self._closed:
                    return
                self._starting += 1
            ready = self._start_one()
            if ready:
                retry = _RETRY_FIRST_S
                continue
            with self._cond:
                self._stats["start_failures"] += 1
                self._cond.wait_for(lambda: self._closed, retry)
            retry = min(retry * 2, _RETRY_MAX_S)

    def _start_one(self) -> bool:
        """Start one sandbox and add it to the idle list; False if it could not be started."""
        try:
            sandbox = Sandbox.start(self.python)
        except OSError as error:
            logger.warning("taskfn pool: could not start a sandbox: %s", error)
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            return False
        with self._cond:
            self._pending = sandbox
            if self._closed:
                sandbox.kill()
        ready = False
        try:
            ready = sandbox.wait_ready(_READY_TIMEOUT_S)
        finally:
            with self._cond:
                # Cleared before anything reaps it, so close() never kills a reused pid.
                self._pending = None
                self._starting -= 1
                keep = ready and not self._closed
                if keep:
                    self._idle.append(sandbox)
                    self._stats["started"] += 1
                closed = self._closed
                self._cond.notify_all()
            if not keep:
                sandbox.close()
        if not ready and not closed:
            logger.warning("taskfn pool: sandbox %s did not get ready", sandbox.process.pid)
        return keep or closed
