"""The handler inside every function's own Lambda: the user's code from the Lambda's code
directory, run in a real sandboxed child, answered as an Execution that fits Lambda's 6 MB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskfn.runtime import function_entry
from taskfn.runtime.python import Execution
from taskfn.stores.lambdas import execution_of


class Context:
    def __init__(self, remaining_ms: int = 60_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def code(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "task"  # Lambda's /var/task
    directory.mkdir()
    monkeypatch.setattr(function_entry, "CODE_DIR", directory)
    return directory


def invoke(event: dict, context: Context | None = None) -> dict:
    answer = function_entry.handler(event, context or Context())
    return json.loads(json.dumps(answer))  # what Lambda would carry


def test_it_runs_the_users_handler_with_the_event_and_reports_progress(code):
    (code / "main.py").write_text(
        "def handler(event, context):\n"
        "    context.set_progress(40)\n"
        "    print('working')\n"
        "    return {'hi': event['body']['name'], 'task': context.task_id}\n")
    answer = invoke({"event": {"body": {"name": "Ada"}, "query": {}}, "taskId": "t-1",
                     "functionId": "f-1", "limits": {"timeout_s": 5, "memory_mb": 256}})
    assert answer["succeeded"] and answer["status_code"] == 200
    assert json.loads(answer["body"]) == {"hi": "Ada", "task": "t-1"}
    assert (answer["stdout"], answer["progress"]) == ("working\n", 40)
    execution = execution_of(answer, 0.0, function_entry.Limits())
    assert isinstance(execution, Execution) and execution.succeeded


def test_a_timeout_within_the_time_the_invocation_has_is_a_504(code):
    (code / "main.py").write_text("import time\ndef handler(event, context):\n"
                                  "    time.sleep(30)\n")
    answer = invoke({"event": {}, "limits": {"timeout_s": 120}}, Context(remaining_ms=3_500))
    assert (answer["timed_out"], answer["status_code"]) == (True, 504)


def test_a_crash_is_reported_like_a_process_run(code):
    (code / "main.py").write_text("import os\ndef handler(event, context):\n    os._exit(3)\n")
    answer = invoke({"event": {}, "limits": {"timeout_s": 5}})
    assert not answer["succeeded"]
    assert answer["failure_reason"] == "process exited with code 3 before returning"


def test_megabytes_of_output_are_cut_to_fit_the_answer():
    noisy = Execution(succeeded=True, timed_out=False, status_code=200, body="ok",
                      stdout="\x01" * (1 << 20), stderr="\x02" * (1 << 20))
    answer = function_entry.fit(noisy)
    assert len(json.dumps(answer).encode()) <= function_entry.MAX_ANSWER_BYTES
    assert answer["body"] == "ok" and answer["succeeded"]
    kept = len(answer["stdout"]) + len(answer["stderr"])
    assert answer["stdout_dropped"] + answer["stderr_dropped"] == 2 * (1 << 20) - kept


def test_a_body_too_large_for_lambda_fails_the_run():
    huge = Execution(succeeded=True, timed_out=False, status_code=200, body="\x03" * (2 << 20))
    answer = function_entry.fit(huge)
    assert not answer["succeeded"] and answer["status_code"] == 500
    assert "a function's Lambda may answer" in answer["failure_reason"]
