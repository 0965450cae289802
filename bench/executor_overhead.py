"""Executor overhead per task: what running a no-op function costs beyond the function itself,
in each isolation: process (the executor's own sandboxes) and lambda (the function's own
Lambda, whose handler runs the same sandbox; the invoke round trip is assumed, not measured).

The floor is `python -c pass` measured in the same run: starting an interpreter is what a
cold child pays on every task, so a cold child cannot get under it; a pre-started sandbox pays
it before the task arrives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, Section, median, percentile, timed
from bench.cost import INVOKE_ROUND_TRIP_MS
from taskfn.runtime import confinement, function_entry
from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import Limits, run_python

NOOP = "def handler(event, context):\n    return None\n"
TARGET_RATIO = 2.0
LIMITS = Limits(timeout_s=30)


def measure(quick: bool = False) -> Section:
    """Floor, cold child and pre-started sandbox, all timed in this one run."""
    runs = 10 if quick else 30
    with tempfile.TemporaryDirectory(prefix="taskfn-bench-") as tmp:
        code = Path(tmp)
        (code / "main.py").write_text(NOOP)
        floor = _samples(runs, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
        cold = _samples(runs, lambda: _ok(run_python(code, {}, limits=LIMITS)))
        with SandboxPool(1) as pool:
            start_up = timed(lambda: pool.wait_ready(30))  # paid between tasks, not in one
            memory = _sandbox_memory()
            warm = []
            for _ in range(runs):
                pool.wait_ready(30)  # steady state: the replacement got ready between tasks
                warm.append(timed(lambda: _ok(pool.run(code, {}, limits=LIMITS))))
            stats = pool.stats
        entry = _function_lambda_samples(code, runs)
        confining = _confinement_costs(code, runs)
    base = median(floor) * 1000
    entry_ms = median(entry) * 1000 + INVOKE_ROUND_TRIP_MS
    cold_ms = median(cold) * 1000
    warm_ms = median(warm) * 1000
    function_note = (
        "Overhead = executor wall time minus the function's own time, taken as 0: "
        "the no-op handler returns at once (importing its 2-line main.py is "
        "counted as overhead)."
    )
    figures = [
        _figure(
            "executor overhead, cold child",
            cold_ms,
            base,
            "run_python: a fresh `python -I -B -u bootstrap.py` per task. " + function_note,
        ),
        _figure(
            "executor overhead, pre-started sandbox",
            warm_ms,
            base,
            "SandboxPool(1).run, timed from the call to the returned Execution; before each "
            "run the pool waited until its replacement sandbox was ready, as in steady state "
            "a Lambda has time between tasks. That replacement starts when the sandbox is "
            "taken, so its start-up competes for CPU with the timed run. "
            + function_note
            + _fallbacks(stats),
        ),
        _figure(
            "executor overhead, isolation lambda",
            entry_ms,
            base,
            "the function Lambda's handler (runtime.function_entry, its next sandbox ready) "
            f"measured here, plus an assumed {INVOKE_ROUND_TRIP_MS:g} ms for the executor's "
            "synchronous Invoke in-region (no AWS here to measure it). "
            + function_note,
        ),
    ]
    details = {
        "runs": runs,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "samples_ms": {
            "python -c pass": _rounded(floor),
            "cold child": _rounded(cold),
            "pre-started sandbox": _rounded(warm),
        },
        "p90_ms": {
            "python -c pass": round(percentile(floor, 90) * 1000, 3),
            "cold child": round(percentile(cold, 90) * 1000, 3),
            "pre-started sandbox": round(percentile(warm, 90) * 1000, 3),
        },
        "pool_stats": stats,
        "function_lambda_handler_ms": _rounded(entry),
        "confinement_ms": confining,
        "sandbox_start_to_ready_ms": round(start_up * 1000, 3),
        "sandbox_memory_kb": memory,
    }
    summary = (
        f"A no-op task costs {cold_ms:.1f} ms with a cold child and {warm_ms:.1f} ms with "
        f"a pre-started sandbox in the executor (isolation process), and about "
        f"{entry_ms:.1f} ms in its function's own Lambda (isolation lambda, with an assumed "
        f"{INVOKE_ROUND_TRIP_MS:g} ms invoke), against {base:.1f} ms for `python -c pass` "
        f"({cold_ms / base:.2f}x, {warm_ms / base:.2f}x, {entry_ms / base:.2f}x). Sandboxes "
        f"run as {'users of their own' if confining['separate_users'] else 'the platform user'}"
        f": staging the code {confining['stage_code_ms']:.2f} ms, the sweep "
        f"{confining['sweep_ms']:.2f} ms a run (medians)."
    )
    return Section(
        key="executor",
        title="Executor overhead per task",
        figures=figures,
        details=details,
        summary=summary,
    )


def _function_lambda_samples(code: Path, runs: int) -> list[float]:
    """A no-op through the handler of a function's own Lambda, warm (code at CODE_DIR)."""
    saved, function_entry.CODE_DIR = function_entry.CODE_DIR, code
    event = {"event": {"body": None}, "limits": {"timeout_s": 10}, "taskId": "bench"}

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    def once() -> None:
        if not function_entry.handler(event, Context())["succeeded"]:
            raise RuntimeError("the no-op function failed in the function Lambda's handler")

    samples = []
    try:
        for _ in range(runs + 1):
            function_entry.sandboxes.wait_ready(30)  # between tasks, as in a warm Lambda
            samples.append(timed(once))
        return samples[1:]
    finally:
        function_entry.CODE_DIR = saved


def _confinement_costs(code: Path, runs: int) -> dict:
    """What confinement adds to a run, on its own: taking a user, staging the code, and the
    sweep of a run that left nothing (the common case)."""
    take, stage, sweep = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        user = confinement.take_user()
        staging = time.perf_counter()
        staged = user.stage_code(code)
        sweeping = time.perf_counter()
        user.sweep()
        ended = time.perf_counter()
        take.append(staging - began)
        stage.append(sweeping - staging)
        sweep.append(ended - sweeping)
        if staged is not None:
            confinement.remove_tree(staged)
        user.release()
    return {"separate_users": confinement.separate_users(),
            "take_user_ms": round(median(take) * 1000, 3),
            "stage_code_ms": round(median(stage) * 1000, 3),
            "sweep_ms": round(median(sweep) * 1000, 3)}


def _figure(name: str, value_ms: float, base_ms: float, note: str) -> Figure:
    return Figure(
        name=name,
        value=round(value_ms, 3),
        unit="ms",
        baseline=round(base_ms, 3),
        baseline_name="median wall time of `python -c pass` (same interpreter)",
        target=f"ratio <= {TARGET_RATIO:g}",
        met=value_ms <= TARGET_RATIO * base_ms,
        note=note,
    )


def _fallbacks(stats: dict) -> str:
    """Say so if some 'warm' samples were really cold starts (the pool was not ready)."""
    if not stats["cold_fallbacks"]:
        return ""
    return f" {stats['cold_fallbacks']} of the pooled runs fell back to a cold start."


def _samples(runs: int, fn) -> list[float]:
    fn()  # one unmeasured run: page cache, lazy imports in this process
    return [timed(fn) for _ in range(runs)]


def _ok(execution) -> None:
    if not execution.succeeded:
        raise RuntimeError(f"the no-op function failed: {execution.failure_reason}")


def _rounded(seconds: list[float]) -> list[float]:
    return [round(value * 1000, 3) for value in seconds]


def _sandbox_memory() -> dict[str, int] | None:
    """VmHWM (peak) and VmRSS of a ready sandbox, from /proc; None where /proc is missing.

    A no-op adds next to nothing to it; the peak after user code is the user's own.
    """
    me = str(os.getpid())
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[1] != me:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if b"bootstrap.py" not in cmdline.read():
                    continue
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        return {name: int(fields[name].split()[0]) for name in ("VmHWM", "VmRSS")}
    return None


if __name__ == "__main__":
    print(json.dumps(measure(quick="--quick" in sys.argv).as_dict(), indent=2))
