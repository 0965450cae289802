"""The handler of every function's own Lambda (isolation "lambda").

The executor invokes a function's Lambda with {"event", "limits", "taskId", "functionId"};
this runs the user's handler from the Lambda's code directory in a sandboxed child process,
exactly as the executor's process mode does (so a crash, exit(), a timeout or megabytes of
output are reported the same way), and answers the Execution. The Lambda's role grants
nothing, and its environments serve this function only.

It imports only the standard library and taskfn.runtime: it is on the path of every task's
cold start.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import DEFAULT_MEMORY_MB, Execution, Limits, failure

CODE_DIR = Path(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
# A synchronous invocation answers at most 6 MB; leave room for the JSON around the body.
MAX_ANSWER_BYTES = 6 * 1024 * 1024 - 64 * 1024
_REPORT_S = 2.0  # the time this handler keeps for itself after the user's timeout

# The next task's sandbox starts while this environment waits (Lambda freezes it meanwhile).
sandboxes = SandboxPool(size=1)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run one task; always answers an Execution as a dict, never raises for user code."""
    limits = _limits(event.get("limits") or {}, context)
    progress: list[int] = []
    execution = sandboxes.run(
        CODE_DIR, event.get("event") or {}, limits=limits,
        task_id=str(event.get("taskId", "")), function_id=str(event.get("functionId", "")),
        on_progress=progress.append,
    )
    answer = fit(execution)
    if progress:
        answer["progress"] = progress[-1]
    return answer


def _limits(given: dict[str, Any], context: Any) -> Limits:
    """The task's limits, within the time this invocation has left."""
    timeout = float(given.get("timeout_s") or 10)
    left = context.get_remaining_time_in_millis() / 1000.0 - _REPORT_S
    return Limits(timeout_s=max(1.0, min(timeout, left)),
                  memory_mb=int(given.get("memory_mb") or DEFAULT_MEMORY_MB))


def fit(execution: Execution) -> dict[str, Any]:
    """The Execution as a dict small enough for Lambda's answer: logs are cut first (what is
    cut is counted as dropped), then a body that still does not fit fails the run."""
    answer = dataclasses.asdict(execution)
    for stream in ("stderr", "stdout"):
        while answer[stream] and _size(answer) > MAX_ANSWER_BYTES:
            text: str = answer[stream]
            keep = len(text) // 2
            answer[f"{stream}_dropped"] += len(text[keep:].encode())
            answer[stream] = text[:keep]
    over = _size(answer) - MAX_ANSWER_BYTES
    if over > 0:
        reason = f"result larger than the {MAX_ANSWER_BYTES} bytes a function's Lambda may answer"
        small = failure(500, "Runtime.InvalidResult", reason, reason=reason,
                        duration_ms=execution.duration_ms)
        answer = {**dataclasses.asdict(small), "stdout": answer["stdout"],
                  "stderr": answer["stderr"], "stdout_dropped": answer["stdout_dropped"],
                  "stderr_dropped": answer["stderr_dropped"]}
    return answer


def _size(answer: dict[str, Any]) -> int:
    return len(json.dumps(answer).encode())
