"""The Python runtime end to end: real child processes running real user code."""

from __future__ import annotations

import base64
import json
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from taskfn.runtime import confinement
from taskfn.runtime.python import CANCELLED_REASON, Execution, Limits, run_python

FAST = Limits(timeout_s=5)
ONE_SECOND = Limits(timeout_s=1)


def run(tmp_path: Path, source: str, event: object = None, **kwargs) -> Execution:
    """Write source as main.py in a fresh code dir and run its handler."""
    code = tmp_path / f"code{len(list(tmp_path.iterdir()))}"
    code.mkdir()
    (code / "main.py").write_text(textwrap.dedent(source))
    kwargs.setdefault("limits", FAST)
    return run_python(code, {} if event is None else event, **kwargs)


def returning(expression: str) -> str:
    return f"def handler(event, context):\n    return {expression}\n"


def assert_failed(result: Execution, status: int = 500) -> dict:
    assert result.succeeded is False
    assert result.status_code == status
    assert result.headers["Content-Type"] == "application/json"
    assert result.failure_reason and "\n" not in result.failure_reason
    body = json.loads(result.body)
    assert set(body) == {"errorType", "errorMessage"}
    return body


# --- shaping the return value ----------------------------------------------------------------


def test_string_result(tmp_path):
    result = run(tmp_path, returning("'héllo ✓'"))
    assert result.succeeded and not result.timed_out
    assert (result.status_code, result.body, result.is_base64) == (200, "héllo ✓", False)
    assert result.headers == {"Content-Type": "text/plain"}
    assert result.content_type == "text/plain"
    assert result.failure_reason == ""
    assert result.duration_ms > 0


def test_bytes_result(tmp_path):
    result = run(tmp_path, returning("bytes(range(256))"))
    assert result.succeeded and result.status_code == 200
    assert result.is_base64
    assert base64.b64decode(result.body) == bytes(range(256))
    assert result.content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("expression", "body"),
    [
        ("{'a': [1, 2.5, None], 'b': 'ü'}", {"a": [1, 2.5, None], "b": "ü"}),
        ("[1, 'two']", [1, "two"]),
        ("42", 42),
        ("True", True),
        ("None", None),
        ("event", {"echo": ["me", 1]}),
    ],
)
def test_json_results(tmp_path, expression, body):
    result = run(tmp_path, returning(expression), event={"echo": ["me", 1]})
    assert result.succeeded and result.status_code == 200
    assert result.content_type == "application/json"
    assert json.loads(result.body) == body


def test_response_with_text_body_and_headers(tmp_path):
    result = run(tmp_path, returning(
        "{'statusCode': 201, 'headers': {'X-Count': 3, 'X-Flag': True}, 'body': 'made'}"
    ))
    assert result.succeeded
    assert result.status_code == 201
    assert result.body == "made" and not result.is_base64
    assert result.headers == {"X-Count": "3", "X-Flag": "true", "Content-Type": "text/plain"}


def test_response_with_bytes_body(tmp_path):
    result = run(tmp_path, returning("{'statusCode': 200, 'body': b'\\x00\\xff'}"))
    assert result.is_base64 and base64.b64decode(result.body) == b"\x00\xff"
    assert result.content_type == "application/octet-stream"


def test_response_with_json_body(tmp_path):
    result = run(tmp_path, returning("{'statusCode': 404, 'body': {'error': 'nope'}}"))
    assert result.succeeded and result.status_code == 404
    assert json.loads(result.body) == {"error": "nope"}
    assert result.content_type == "application/json"


@pytest.mark.parametrize("response", ["{'statusCode': 204}", "{'statusCode': 204, 'body': None}"])
def test_response_without_body(tmp_path, response):
    result = run(tmp_path, returning(response))
    assert result.succeeded and result.status_code == 204
    assert result.body == ""
    assert "Content-Type" in result.headers


def test_explicit_content_type_wins_whatever_its_case(tmp_path):
    result = run(tmp_path, returning(
        "{'statusCode': 200, 'headers': {'content-TYPE': 'text/html'}, 'body': '<p>hi</p>'}"
    ))
    assert result.headers == {"Content-Type": "text/html"}
    assert result.content_type == "text/html"


def test_lambda_style_base64_body(tmp_path):
    result = run(tmp_path, returning(
        "{'statusCode': 200, 'body': 'aGk=', 'isBase64Encoded': True}"
    ))
    assert result.is_base64 and base64.b64decode(result.body) == b"hi"


@pytest.mark.parametrize("status", ["600", "99", "'200'", "True", "None", "200.0"])
def test_bad_status_code_fails(tmp_path, status):
    result = run(tmp_path, returning(f"{{'statusCode': {status}, 'body': 'x'}}"))
    body = assert_failed(result)
    assert result.failure_reason.startswith("statusCode must be an integer from 100 to 599")
    assert body["errorMessage"] == result.failure_reason


@pytest.mark.parametrize(
    "headers", ["'nope'", "{'X-A': 'a\\r\\nSet-Cookie: x'}", "{'X-A': [1]}", "{1: 'a'}"]
)
def test_bad_headers_fail(tmp_path, headers):
    assert_failed(run(tmp_path, returning(f"{{'statusCode': 200, 'headers': {headers}}}")))


@pytest.mark.parametrize(
    "expression",
    ["object()", "{'a': {1, 2}}", "float('nan')", "{'statusCode': 200, 'body': [object()]}"],
)
def test_not_json_serializable_fails(tmp_path, expression):
    result = run(tmp_path, returning(expression))
    assert_failed(result)
    assert result.failure_reason.startswith("result is not JSON serializable: ")


def test_result_too_large(tmp_path):
    limits = Limits(timeout_s=5, max_result_bytes=1000)
    result = run(tmp_path, returning("'x' * 2000"), limits=limits)
    assert_failed(result)
    assert result.failure_reason == "result larger than 1000 bytes"
    assert run(tmp_path, returning("'x' * 900"), limits=limits).succeeded


# --- failures ---------------------------------------------------------------------------------


def test_handler_raises(tmp_path):
    result = run(tmp_path, """
        def helper():
            raise ValueError("boom")

        def handler(event, context):
            print("before the error")
            helper()
    """)
    body = assert_failed(result)
    assert body == {"errorType": "ValueError", "errorMessage": "boom"}
    assert result.failure_reason == "ValueError: boom"
    assert "Traceback (most recent call last)" in result.stderr
    assert "main.py" in result.stderr and "in helper" in result.stderr
    assert "ValueError: boom" in result.stderr
    assert "bootstrap.py" not in result.stderr  # the runtime's own frames are trimmed
    assert result.stdout == "before the error\n"


def test_import_error_is_reported_like_a_handler_error(tmp_path):
    result = run(tmp_path, "import json\nraise RuntimeError('bad config')\n")
    assert assert_failed(result) == {"errorType": "RuntimeError", "errorMessage": "bad config"}
    assert result.failure_reason == "RuntimeError: bad config"
    assert "Traceback" in result.stderr and "main.py" in result.stderr
    assert "importlib" not in result.stderr


def test_missing_module_is_reported(tmp_path):
    result = run(tmp_path, "import no_such_module_here\n" + returning("1"))
    assert assert_failed(result)["errorType"] == "ModuleNotFoundError"


def test_exception_without_message(tmp_path):
    result = run(tmp_path, "def handler(event, context):\n    raise KeyError\n")
    assert result.failure_reason == "KeyError"


def test_handler_missing_or_not_callable(tmp_path):
    result = run(tmp_path, "x = 1\n")
    assert result.failure_reason == "main.py does not define handler"
    result = run(tmp_path, "handler = 3\n")
    assert result.failure_reason == "main.handler is not callable (it is int)"


def test_async_handler_fails_clearly(tmp_path):
    result = run(tmp_path, "async def handler(event, context):\n    return 1\n")
    assert_failed(result)
    assert "async handlers are not supported" in result.failure_reason
    assert "never awaited" not in result.stderr


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("sys.exit(3)", "process exited with code 3 before returning"),
        ("sys.exit()", "process exited with code 0 before returning"),
        ("sys.exit('bye')", "process exited with code 1 before returning"),
        ("os._exit(0)", "process exited with code 0 before returning"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9"),
    ],
)
def test_exit_before_returning(tmp_path, statement, reason):
    result = run(tmp_path, f"""
        import os, signal, sys

        def handler(event, context):
            print("about to stop")
            {statement}
            return "never"
    """)
    body = assert_failed(result)
    assert result.failure_reason == reason
    assert body["errorMessage"] == reason
    assert not result.timed_out
    assert result.stdout == "about to stop\n"


def test_exit_at_import(tmp_path):
    result = run(tmp_path, "import sys\nsys.exit(7)\n")
    assert result.failure_reason == "process exited with code 7 before returning"


def test_infinite_loop_times_out(tmp_path):
    started = time.monotonic()
    result = run(tmp_path, """
        import os

        def handler(event, context):
            print(os.getcwd())  # no flush: the child runs unbuffered
            while True:
                pass
    """, limits=ONE_SECOND)
    assert time.monotonic() - started < 10  # it returned; no tighter promise than that
    body = assert_failed(result, status=504)
    assert result.timed_out
    assert body == {"errorType": "TimeoutError", "errorMessage": "timed out after 1 s"}
    assert result.failure_reason == "timed out after 1 s"
    workdir = result.stdout.strip()  # output from before the kill is kept
    assert workdir.startswith(tempfile.gettempdir()) and not Path(workdir).exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int) -> bool:
    until = time.monotonic() + 5
    while time.monotonic() < until:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


SPAWN = """
    import subprocess, sys, time

    def handler(event, context):
        child = subprocess.Popen(["sleep", "1000"])
        print(child.pid, flush=True)
        {after}
"""


def test_grandchild_is_killed_on_timeout(tmp_path):
    result = run(tmp_path, SPAWN.format(after="while True: time.sleep(0.01)"), limits=ONE_SECOND)
    assert result.timed_out and result.status_code == 504
    assert _wait_dead(int(result.stdout.split()[0]))


def test_grandchild_left_running_does_not_block_the_result(tmp_path):
    """The grandchild holds stdout/stderr open; the run must still finish, and kill it."""
    result = run(tmp_path, SPAWN.format(after="return 'done'"))
    assert result.succeeded and result.body == "done"
    assert result.duration_ms < 4000
    assert _wait_dead(int(result.stdout.split()[0]))


def test_grandchild_that_left_the_group_is_killed_too(tmp_path):
    """A setsid grandchild escapes the group kill; it holds stdout, so it is found by its pipe."""
    source = SPAWN.replace("subprocess.Popen(", "subprocess.Popen(start_new_session=True, args=")
    result = run(tmp_path, source.format(after="return 'done'"))
    assert result.succeeded and result.body == "done"
    assert _wait_dead(int(result.stdout.split()[0]))


def test_cancel_kills_the_process_group_and_fails_the_run(tmp_path):
    """An external cell whose task was cancelled sets the event: the child and its own
    children die long before the timeout, and the run says it was cancelled."""
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = run(tmp_path, SPAWN.format(after="time.sleep(60)"), limits=Limits(timeout_s=60),
                 cancel=cancel)
    assert time.monotonic() - started < 5
    body = assert_failed(result)
    assert body["errorType"] == "Runtime.Cancelled" and not result.timed_out
    assert result.failure_reason == CANCELLED_REASON
    assert _wait_dead(int(result.stdout.split()[0]))


def test_a_run_that_finished_is_not_cancelled_afterwards(tmp_path):
    cancel = threading.Event()
    result = run(tmp_path, returning("'done'"), cancel=cancel)
    cancel.set()
    assert result.succeeded and result.body == "done"


def test_lingering_thread_does_not_delay_the_result(tmp_path):
    result = run(tmp_path, """
        import threading, time

        def handler(event, context):
            threading.Thread(target=time.sleep, args=(1000,)).start()
            return "done"
    """)
    assert result.succeeded and result.body == "done"


# --- output ----------------------------------------------------------------------------------


def test_huge_output_is_capped_and_counted(tmp_path):
    result = run(tmp_path, """
        import sys

        def handler(event, context):
            chunk = "x" * 65536
            for _ in range(80):  # 5 MiB to each stream
                sys.stdout.write(chunk)
                sys.stderr.write(chunk)
            return "survived"
    """)
    assert result.succeeded and result.body == "survived"
    mib = 1024 * 1024
    assert len(result.stdout) == mib and result.stdout_dropped == 4 * mib
    assert len(result.stderr) == mib and result.stderr_dropped == 4 * mib


def test_output_limit_is_configurable(tmp_path):
    limits = Limits(timeout_s=5, max_output_bytes=10)
    result = run(tmp_path, "def handler(e, c):\n    print('0123456789abc')\n", limits=limits)
    assert result.stdout == "0123456789"
    assert result.stdout_dropped == 4


def test_undecodable_output_is_replaced(tmp_path):
    result = run(tmp_path, """
        import sys

        def handler(event, context):
            sys.stdout.buffer.write(b"ok \\xff\\xfe end")
            print("\\udc80")  # a lone surrogate must not crash print
            return 1
    """)
    assert result.succeeded
    assert result.stdout.startswith("ok \ufffd\ufffd end")


# --- context and progress ----------------------------------------------------------------------


def test_progress_callbacks_arrive_in_order(tmp_path):
    seen: list[int] = []
    result = run(tmp_path, """
        def handler(event, context):
            for value in (10, 20, 20, 55.7, 150, -5):
                context.set_progress(value)
            errors = []
            for bad in ("50", None, True, float("nan")):
                try:
                    context.set_progress(bad)
                except ValueError as error:
                    errors.append(str(error))
            return len(errors)
    """, on_progress=seen.append)
    assert result.succeeded and result.body == "4"
    assert seen == [10, 20, 55, 100, 0]


def test_failing_progress_callback_does_not_break_the_run(tmp_path):
    calls: list[int] = []

    def explode(value: int) -> None:
        calls.append(value)
        raise RuntimeError("callback is broken")

    result = run(tmp_path, """
        def handler(event, context):
            context.set_progress(30)
            context.set_progress(60)
            return "fine"
    """, on_progress=explode)
    assert result.succeeded and result.body == "fine"
    assert calls == [30, 60]


def test_context_identity_and_remaining_time(tmp_path):
    result = run(tmp_path, """
        import time

        def handler(event, context):
            first = context.get_remaining_time_in_millis()
            time.sleep(0.2)
            second = context.get_remaining_time_in_millis()
            return [context.task_id, context.function_id, first, second]
    """, task_id="task-1", function_id="fn-9")
    task_id, function_id, first, second = json.loads(result.body)
    assert (task_id, function_id) == ("task-1", "fn-9")
    assert 0 < second < first <= 5000
    assert first - second >= 150


# --- isolation and limits ------------------------------------------------------------------------


def test_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-do-not-leak")
    monkeypatch.setenv("TASKFN_TABLE", "platform-table")
    result = run(tmp_path, """
        import os, subprocess

        def handler(event, context):
            shell = subprocess.run(["env"], capture_output=True, text=True).stdout
            return {"env": dict(os.environ), "cwd": os.getcwd(), "shell": shell}
    """)
    assert result.succeeded, result.stderr
    seen = json.loads(result.body)
    env = seen["env"]
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "TZ", "PYTHONUNBUFFERED"}
    assert env["HOME"] == env["TMPDIR"] == seen["cwd"]
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert (env["LANG"], env["TZ"], env["PYTHONUNBUFFERED"]) == ("C.UTF-8", "UTC", "1")
    assert "do-not-leak" not in result.body and "AWS" not in result.body
    assert not Path(seen["cwd"]).exists()  # the private temp dir is removed afterwards


def test_isolated_interpreter(tmp_path):
    result = run(tmp_path, """
        import os, sys

        def handler(event, context):
            return {
                "path0": sys.path[0],
                "main": open(os.path.join(sys.path[0], "main.py")).read(),
                "cwd_on_path": os.getcwd() in sys.path or "" in sys.path,
                "isolated": sys.flags.isolated,
                "stdin": sys.stdin.read(),
                "argv": sys.argv,
            }
    """, event={"big": "x" * 200_000})
    seen = json.loads(result.body)
    code = (tmp_path / "code0").resolve()
    assert seen["main"] == (code / "main.py").read_text()  # the code dir comes first
    # A sandbox user of its own imports a staged copy; one sharing the user, the dir itself.
    assert (seen["path0"] != str(code)) == confinement.separate_users()
    assert not seen["cwd_on_path"]
    assert seen["isolated"] == 1
    assert seen["stdin"] == ""
    assert seen["argv"][0].endswith("main.py")


def test_user_files_are_importable_and_do_not_break_the_runtime(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text(
        "import json, helper\n"
        "def handler(e, c):\n"
        "    return {'x': helper.X, 'json': json.__file__}\n"
    )
    (code / "helper.py").write_text("X = 'from helper'\n")
    # Modules the runtime loaded before user code (json, base64, ...) cannot be replaced.
    (code / "json.py").write_text("raise ImportError('user json.py was imported')\n")
    (code / "base64.py").write_text("raise ImportError('user base64.py was imported')\n")
    result = run_python(code, {}, limits=FAST)
    assert result.succeeded, result.failure_reason
    seen = json.loads(result.body)
    assert seen["x"] == "from helper"
    assert not seen["json"].startswith(str(code))


def test_the_whole_standard_library_is_importable(tmp_path):
    """Also submodules of packages the runtime imported first, and extension modules, where
    the sandbox's user cannot reach the interpreter's own directory."""
    result = run(tmp_path, """
        def handler(event, context):
            import decimal, email.mime.text, json.tool, sqlite3, ssl, urllib.request
            return {"idna": "bücher.example".encode("idna").decode(),
                    "sqlite": sqlite3.connect(":memory:").execute("select 1+1").fetchone()[0]}
    """)
    assert result.succeeded, result.stderr
    assert json.loads(result.body) == {"idna": "xn--bcher-kva.example", "sqlite": 2}


def test_a_run_cannot_leave_its_process_group_nor_make_namespaces(tmp_path):
    """setsid and setpgid succeed and change nothing (so start_new_session still works);
    namespaces are refused; threads, subprocesses and process pools work as ever."""
    result = run(tmp_path, """
        import concurrent.futures, os, subprocess

        def square(n):
            return n * n

        def handler(event, context):
            group = os.getpgrp()
            os.setpgid(0, 0)
            child = subprocess.run(["sh", "-c", "cut -d' ' -f5 /proc/self/stat"],
                                   start_new_session=True, capture_output=True, text=True)
            refused = []
            for flag in ("CLONE_NEWUSER", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWNET"):
                try:
                    os.unshare(getattr(os, flag))
                except PermissionError:
                    refused.append(flag)
            with concurrent.futures.ProcessPoolExecutor(2) as pool:
                squares = list(pool.map(square, [1, 2, 3]))
            return {"same": os.getpgrp() == group, "child": int(child.stdout) == group,
                    "refused": refused, "squares": squares}
    """)
    assert result.succeeded, result.stderr
    assert json.loads(result.body) == {
        "same": True, "child": True, "squares": [1, 4, 9],
        "refused": ["CLONE_NEWUSER", "CLONE_NEWNS", "CLONE_NEWPID", "CLONE_NEWNET"]}


def test_memory_limit(tmp_path):
    result = run(tmp_path, """
        def handler(event, context):
            block = bytearray(1024 ** 3)
            return len(block)
    """, limits=Limits(timeout_s=5, memory_mb=100))
    assert_failed(result)
    assert result.failure_reason.startswith("MemoryError")
    assert "memory limit 100 MB" in result.failure_reason


def test_memory_exhausted_gradually(tmp_path):
    result = run(tmp_path, """
        def handler(event, context):
            hoard = []
            while True:
                hoard.append(" " * 1_000_000)
    """, limits=Limits(timeout_s=5, memory_mb=100))
    assert_failed(result)
    assert "MemoryError" in result.failure_reason


def test_file_size_limit(tmp_path):
    result = run(tmp_path, """
        def handler(event, context):
            with open("big.bin", "wb") as out:
                out.write(b"x" * 200_000)
            return "wrote"
    """, limits=Limits(timeout_s=5, max_file_bytes=100_000))
    assert_failed(result)
    assert "File too large" in result.failure_reason


def test_open_files_limit(tmp_path):
    result = run(tmp_path, """
        def handler(event, context):
            files = [open("/dev/null") for _ in range(100)]
            return len(files)
    """, limits=Limits(timeout_s=5, max_open_files=32))
    assert_failed(result)
    assert "Too many open files" in result.failure_reason


def test_rlimits_applied(tmp_path):
    result = run(tmp_path, """
        import resource

        def handler(event, context):
            return {name: resource.getrlimit(getattr(resource, name))
                    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE",
                                 "RLIMIT_FSIZE", "RLIMIT_CORE")}
    """, limits=Limits(timeout_s=2.5, memory_mb=0))
    limits = json.loads(result.body)
    assert limits["RLIMIT_AS"] == [512 * 1024 * 1024] * 2  # 0 means the default
    assert limits["RLIMIT_CPU"] == [4, 5]
    assert limits["RLIMIT_NOFILE"] == [256, 256]
    assert limits["RLIMIT_FSIZE"] == [64 * 1024 * 1024] * 2
    assert limits["RLIMIT_CORE"] == [0, 0]


def test_missing_interpreter_is_a_failure_not_a_crash(tmp_path):
    result = run(tmp_path, returning("1"), python="/nonexistent/python3")
    assert_failed(result)
    assert result.failure_reason.startswith("could not start the Python runtime")


def test_event_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="not JSON serializable"):
        run(tmp_path, returning("1"), event={"x": object()})
