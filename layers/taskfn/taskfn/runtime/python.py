"""Parent side of the Python runtime: run user code in a limited child process.

Each run gets a fresh child (bootstrap.py) in its own session and process group, a private temp
dir as cwd and HOME, and a clean environment, so user code sees none of the platform's
variables or credentials; runtime.confinement decides who it runs as and sweeps whatever it
leaves. The parent never blocks on the child: every pipe is drained by a thread, the wait is
bounded by the timeout, and at the end the whole process group is SIGKILLed and the run swept.
The pieces below run_python (Sandbox, run_job) are shared with runtime.pool, whose pre-started
children end the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskfn.runtime import bootstrap, confinement

logger = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).resolve().with_name("bootstrap.py")
WORKDIR_PREFIX = "taskfn-run-"

DEFAULT_MEMORY_MB = 512
_CHUNK = 64 * 1024
_RESULT_GRACE_S = 2.0  # how long a child that already sent its result may take to exit
_KILL_WAIT_S = 5.0  # SIGKILL is not instant for a process in uninterruptible sleep
_JOIN_S = 2.0  # bound on joining the pipe threads once the sandbox is stopped
_WAIT_SLICE_S = 0.1
# The failure_reason of a run stopped through `cancel` (it sent no result before).
CANCELLED_REASON = "cancelled while running"


@dataclass(frozen=True)
class Limits:
    """Per-run limits; memory and files are enforced by the child on itself (setrlimit), the
    run's memory and CPUs as a whole by its cgroups where there are (runtime.cgroups)."""

    timeout_s: float = 10.0
    memory_mb: int = DEFAULT_MEMORY_MB  # RLIMIT_AS for the child (0 -> default 512)
    cpu_count: int = 0  # CPUs its processes may use together (0 -> cgroups.DEFAULT_CPUS)
    max_output_bytes: int = 1024 * 1024  # per stream kept; the rest is drained and counted
    max_result_bytes: int = 6 * 1024 * 1024
    max_open_files: int = 256
    max_file_bytes: int = 64 * 1024 * 1024  # RLIMIT_FSIZE


@dataclass(frozen=True)
class Execution:
    """Everything the platform records about one run of user code."""

    succeeded: bool
    timed_out: bool
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    is_base64: bool = False
    stdout: str = ""
    stderr: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    failure_reason: str = ""
    duration_ms: float = 0.0

    @property
    def content_type(self) -> str:
        """The response's Content-Type, whatever case the header name has."""
        for name, value in self.headers.items():
            if name.lower() == "content-type":
                return value
        return "application/octet-stream"


def run_python(
    code_dir: Path,
    event: dict,
    *,
    limits: Limits = Limits(),  # frozen, so one shared default is safe
    task_id: str = "",
    function_id: str = "",
    on_progress: Callable[[int], None] | None = None,
    python: str = sys.executable,
    cancel: threading.Event | None = None,
    on_output: OutputSink | None = None,
) -> Execution:
    """Run main.handler(event, context) from code_dir in a child process and collect the result.

    Setting `cancel` kills the child's process group within a wait slice (an external cell
    whose task was cancelled); the run then fails as Runtime.Cancelled. `on_output` is given
    the output as it comes (what is kept of it), for a reader who follows the run live.

    Never raises for anything the user's code does; raises ValueError only if the event itself
    is not JSON serializable (a caller bug).
    """
    payload, timeout_s, memory_mb = check_run(event, limits)
    started = time.monotonic()
    try:
        box = Sandbox.start(python)
    except OSError as error:
        return start_failure(error, started)
    return run_job(box, code_dir, payload, limits, timeout_s, memory_mb, started,
                   task_id=task_id, function_id=function_id, on_progress=on_progress,
                   cancel=cancel, on_output=on_output)


def start_failure(error: OSError, started: float) -> Execution:
    """The run could not begin: no interpreter, no free sandbox user, no disk."""
    reason = f"could not start the Python runtime: {error}"
    logger.error("taskfn runtime: %s", reason)
    return failure(500, "Runtime.StartError", reason, reason=reason, started=started)


def run_job(box: Sandbox, code_dir: Path, payload: bytes, limits: Limits, timeout_s: float,
            memory_mb: int, started: float, *, task_id: str = "", function_id: str = "",
            on_progress: Callable[[int], None] | None = None,
            cancel: threading.Event | None = None,
            on_output: OutputSink | None = None) -> Execution:
    """Give a started sandbox its job (the code, as its user may read it, and the event) and
    supervise it to its end; the sandbox is closed whatever happens."""
    try:
        code = box.stage(code_dir)
        box.user.limit_memory(memory_mb)
        box.user.limit_cpu(limits.cpu_count)
        config = job_config(code, limits, timeout_s, memory_mb, started + timeout_s, task_id,
                            function_id)
        data = json.dumps(config).encode("utf-8") + b"\n" + payload
    except OSError as error:
        box.close()
        return start_failure(error, started)
    except BaseException:
        box.close()
        raise
    return run_child(box, data, limits, timeout_s, started + timeout_s, started,
                     on_progress, cancel=cancel, on_output=on_output)


def check_run(event: dict, limits: Limits) -> tuple[bytes, float, int]:
    """(event as JSON bytes, timeout in s, memory in MB), or ValueError for a caller bug.

    Checked before anything is started, so a bad call costs no process (or pooled sandbox).
    """
    try:
        payload = json.dumps(event).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"event is not JSON serializable: {error}") from error
    timeout_s = float(limits.timeout_s)
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {limits.timeout_s!r}")
    memory_mb = int(limits.memory_mb)
    if memory_mb <= 0:
        memory_mb = DEFAULT_MEMORY_MB
    return payload, timeout_s, memory_mb


def job_config(code_dir: Path, limits: Limits, timeout_s: float, memory_mb: int,
               deadline: float, task_id: str, function_id: str) -> dict:
    """What the bootstrap needs to know about one run (a pooled sandbox gets it on stdin)."""
    return {
        "code_dir": str(Path(code_dir).resolve()),
        "deadline": deadline,
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "max_result_bytes": int(limits.max_result_bytes),
        "max_open_files": int(limits.max_open_files),
        "max_file_bytes": int(limits.max_file_bytes),
        "task_id": task_id,
        "function_id": function_id,
    }


class Sandbox:
    """A bootstrap child started ahead of its job, with what the parent holds of it.

    It runs as its own RunUser (runtime.confinement) in a session and process group of its own,
    with a private temp dir as cwd, HOME and TMPDIR and a clean environment; it confines
    itself (a separate user also in a private /tmp, which shows its temp dir and the
    directory its code will be staged in: both are made before it starts), says it is ready
    and waits for its job on stdin. close() ends it and everything it started, and removes
    what it left."""

    def __init__(self, process: subprocess.Popen, read_fd: int, workdir: str,
                 user: confinement.RunUser):
        self.process = process
        self.read_fd = read_fd
        self.workdir = workdir
        self.user = user
        self.staged: Path | None = None
        self.reading = False  # the result reader closes read_fd from then on
        self._stopped = False
        self._swept = False
        self._closed = False

    @classmethod
    def start(cls, python: str) -> Sandbox:
        """Start a child that waits for its job; OSError if it cannot be started."""
        confinement.harden_parent()
        user = confinement.take_user()
        workdir = ""
        staged: Path | None = None
        try:
            workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
            user.own(workdir)
            staged = user.code_place()  # its private /tmp must show it, so it comes first
            read_fd, write_fd = os.pipe()
        except BaseException:
            for made in (workdir, staged):
                if made:
                    confinement.remove_tree(made)
            user.release()
            raise
        config = {"result_fd": write_fd, "sandbox": user.bootstrap_config(staged)}
        try:
            process = _spawn(python, config, workdir, write_fd)
        except BaseException:
            os.close(read_fd)
            confinement.remove_tree(workdir)
            if staged is not None:
                confinement.remove_tree(staged)
            user.release()
            raise
        confinement.spawned(process.pid)
        user.enter(process.pid, DEFAULT_MEMORY_MB)
        box = cls(process, read_fd, workdir, user)
        box.staged = staged
        return box

    def stage(self, code_dir: Path) -> Path:
        """The directory this sandbox imports the code from (see RunUser.stage_code)."""
        self.staged = self.user.stage_code(code_dir, self.staged)
        return Path(code_dir) if self.staged is None else self.staged / "code"

    def wait_ready(self, timeout: float) -> bool:
        """Wait for the child's {"ready": true} line; False if it died or took too long."""
        until = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = until - time.monotonic()
            if left <= 0:
                return False
            try:
                readable, _, _ = select.select([self.read_fd], [], [], left)
                if not readable:
                    return False
                chunk = os.read(self.read_fd, 256)
            except OSError:
                return False
            if not chunk:
                return False  # it exited (or was killed) before getting ready
            line += chunk
        try:
            return json.loads(line) == {"ready": True}
        except ValueError:
            return False

    def alive(self) -> bool:
        return not has_exited(self.process, None)

    def kill(self) -> None:
        """SIGKILL the group; safe at any time before stop() reaps the leader."""
        if not self._stopped:
            kill_group(self.process.pid)

    def stop(self) -> None:
        """Kill the group, reap the leader, then sweep: nothing the run started survives."""
        if self._stopped:
            return
        # The leader is not reaped yet, so its pid still names this group and no other.
        kill_group(self.process.pid)
        try:
            self.process.wait(timeout=_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            logger.error("taskfn runtime: child %s did not die after SIGKILL", self.process.pid)
        self._stopped = True
        try:
            self._swept = self.user.sweep()
        except Exception:
            logger.exception("taskfn runtime: the sweep of child %s failed", self.process.pid)
        confinement.reaped(self.process.pid)

    def take(self, stream) -> int:
        """A descriptor of one of the child's pipes for a thread to own: the stream itself is
        closed, so nothing else can close the number under that thread's feet."""
        fd = os.dup(stream.fileno())
        stream.close()
        return fd

    def close(self) -> None:
        """stop(), then close the pipes and remove the temp dirs. The user may serve again
        only if the sweep left nothing; one that did not stays taken (and is logged)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        if not self.reading:
            os.close(self.read_fd)
        confinement.remove_tree(self.workdir)
        if self.staged is not None:
            confinement.remove_tree(self.staged)
        if self._swept:
            self.user.release()
        else:
            logger.error("taskfn runtime: sandbox user %s is not reused: its sweep failed",
                         self.user.uid)


def _spawn(python: str, config: dict, workdir: str, write_fd: int) -> subprocess.Popen:
    """Start bootstrap.py in its own session with a clean environment; closes write_fd here.

    Only the child may keep the result pipe's write end, or the parent never sees EOF on it.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
    }
    # -u: -I ignores PYTHONUNBUFFERED, and output must not sit in a buffer when the child is
    # killed on timeout (the user needs it to see where it was stuck).
    command = [python, "-I", "-B", "-u", str(BOOTSTRAP), json.dumps(config)]
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            pass_fds=(write_fd,),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(write_fd)


def run_child(
    box: Sandbox,
    data: bytes,
    limits: Limits,
    timeout_s: float,
    deadline: float,
    started: float,
    on_progress: Callable[[int], None] | None,
    *,
    cancel: threading.Event | None = None,
    on_output: OutputSink | None = None,
) -> Execution:
    """Supervise a sandbox that has its job to its end; whatever happens, no process or temp
    dir is left."""
    try:
        return _supervise(box, data, limits, timeout_s, deadline, started, on_progress, cancel,
                          on_output)
    finally:
        box.close()


def _supervise(
    box: Sandbox,
    payload: bytes,
    limits: Limits,
    timeout_s: float,
    deadline: float,
    started: float,
    on_progress: Callable[[int], None] | None,
    cancel: threading.Event | None = None,
    on_output: OutputSink | None = None,
) -> Execution:
    """Feed, drain, wait (bounded), stop the sandbox, and build the Execution.

    Each pipe has a thread of its own, which owns its descriptor and closes it; the stop pipe
    ends them all once the run is over, even if something outside it still holds a pipe."""
    process, read_fd = box.process, box.read_fd
    stop_read, stop_write = os.pipe()
    out = _Capture(box.take(process.stdout), limits.max_output_bytes, stop_read,
                   _sink(on_output, "stdout"))
    err = _Capture(box.take(process.stderr), limits.max_output_bytes, stop_read,
                   _sink(on_output, "stderr"))
    results = _ResultReader(read_fd, limits.max_result_bytes, on_progress, stop_read)
    threads = [
        threading.Thread(target=_feed, args=(box.take(process.stdin), payload, stop_read),
                         daemon=True, name="taskfn-stdin"),
        threading.Thread(target=out.run, daemon=True, name="taskfn-stdout"),
        threading.Thread(target=err.run, daemon=True, name="taskfn-stderr"),
        # Progress callbacks run here and act for the caller: its context goes with them.
        threading.Thread(target=contextvars.copy_context().run, args=(results.run,),
                         daemon=True, name="taskfn-result"),
    ]
    for thread in threads:
        thread.start()
    box.reading = True
    exited = _wait_for_exit(process, deadline, results, cancel)
    # Stop it either way: descendants may still hold the pipes (and burn CPU).
    box.stop()
    ended = time.monotonic()
    if not _join(threads, _JOIN_S):
        logger.warning("taskfn runtime: pipes of child %s still open; stopping their readers",
                       process.pid)
        os.write(stop_write, b"x")
        if not _join(threads, _JOIN_S):  # never seen: they poll the stop pipe
            logger.error("taskfn runtime: pipe threads of child %s did not stop", process.pid)
    if not any(thread.is_alive() for thread in threads):
        os.close(stop_write)
        os.close(stop_read)
    common = {
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_dropped": out.dropped,
        "stderr_dropped": err.dropped,
        "duration_ms": (ended - started) * 1000.0,
    }
    final = results.final
    if final is not None and "result" in final:
        return _success(final["result"], limits, common)
    if final is not None and "error" in final:
        error = final["error"] if isinstance(final["error"], dict) else {}
        error_type = str(error.get("type") or "Error")
        message = str(error.get("message") or "")
        reason = str(error.get("reason") or (f"{error_type}: {message}" if message
                                              else error_type))
        return failure(500, error_type, message, reason=reason, **common)
    if results.oversized:
        reason = f"result larger than {limits.max_result_bytes} bytes"
        return failure(500, "Runtime.InvalidResult", reason, reason=reason, **common)
    if cancel is not None and cancel.is_set():
        return failure(500, "Runtime.Cancelled", CANCELLED_REASON, reason=CANCELLED_REASON,
                       **common)
    if not exited:
        reason = f"timed out after {timeout_s:g} s"
        return failure(504, "TimeoutError", reason, reason=reason, timed_out=True, **common)
    if process.returncode == -signal.SIGKILL and box.user.ran_out_of_memory():
        reason = (f"out of memory: the run's processes together used more than its limit "
                  f"({limits.memory_mb or DEFAULT_MEMORY_MB} MB)")
        return failure(500, "MemoryError", reason, reason=reason, **common)
    reason = _exit_reason(process.returncode)
    return failure(500, "Runtime.ExitError", reason, reason=reason, **common)


def _success(result: object, limits: Limits, common: dict) -> Execution:
    """Build a successful Execution from the child's result. User code runs in the child and
    can write to the result pipe itself, so the result is checked again here, with the
    bootstrap's own rules (status, header names and values, base64, size)."""
    try:
        if not isinstance(result, dict) or "statusCode" not in result:
            raise TypeError("result is not a response")
        if not isinstance(result.get("body"), str):
            raise TypeError("body is not text")
        shaped = bootstrap.shape_result(result, int(limits.max_result_bytes))
    except (bootstrap.ResultError, TypeError, ValueError) as error:
        reason = f"malformed result from the runtime: {error}"
        return failure(500, "Runtime.InvalidResult", reason, reason=reason, **common)
    return Execution(
        succeeded=True,
        timed_out=False,
        status_code=shaped["statusCode"],
        headers=shaped["headers"],
        body=shaped["body"],
        is_base64=shaped["isBase64Encoded"],
        failure_reason="",
        **common,
    )


def failure(status: int, error_type: str, message: str, *, reason: str | None = None,
             timed_out: bool = False, started: float | None = None, **common) -> Execution:
    """A failed run: JSON error body {"errorType", "errorMessage"} like Lambda's."""
    if started is not None:
        common.setdefault("duration_ms", (time.monotonic() - started) * 1000.0)
    body = json.dumps({"errorType": error_type, "errorMessage": message})
    return Execution(
        succeeded=False,
        timed_out=timed_out,
        status_code=status,
        headers={"Content-Type": "application/json"},
        body=body,
        is_base64=False,
        failure_reason=reason if reason is not None else f"{error_type}: {message}",
        **common,
    )


def _exit_reason(returncode: int | None) -> str:
    """One line saying how the child ended without sending a result."""
    if returncode is None:
        return "process could not be stopped"
    if returncode < 0:
        number = -returncode
        if number == signal.SIGXCPU:
            return f"killed by signal {number} (CPU time limit exceeded)"
        return f"killed by signal {number}"
    return f"process exited with code {returncode} before returning"


def _wait_for_exit(process: subprocess.Popen, deadline: float, results: _ResultReader,
                   cancel: threading.Event | None = None) -> bool:
    """Wait, without reaping, until the child exits, time is up or `cancel` is set; True if it
    exited.

    Not reaping keeps the leader's pid (= the group id) reserved, so the kill that follows
    cannot hit an unrelated group that reused the number.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            limit = deadline
            if results.final_at is not None:
                limit = min(limit, results.final_at + _RESULT_GRACE_S)
            left = limit - time.monotonic()
            if left <= 0 or (cancel is not None and cancel.is_set()):
                return has_exited(process, None)
            wait = min(left, _WAIT_SLICE_S)
            if pidfd is not None:
                ready, _, _ = select.select([pidfd], [], [], wait)
                if ready:
                    return True
            elif has_exited(process, wait):
                return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def has_exited(process: subprocess.Popen, sleep: float | None) -> bool:
    """Poll for exit without reaping (waitid WNOWAIT); optionally sleep first."""
    if sleep:
        time.sleep(sleep)
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # already reaped
    return info is not None


def _join(threads: list[threading.Thread], seconds: float) -> bool:
    """Join all threads within one overall bound; True if they all finished."""
    until = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group; call it only while its leader is not yet reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _chunks(fd: int, stop: int):
    """What arrives on fd until end of file, or until `stop` is readable (the run is over and
    someone outside it still holds the other end). The caller owns fd and closes it."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(stop, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if fd in events:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                return
            yield chunk
        elif stop in events:
            return


def _feed(fd: int, payload: bytes, stop: int) -> None:
    """Write the event to the child's stdin, then close it (this thread owns fd). A child
    that never reads it stops holding it up when the run is over."""
    try:
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(stop, select.POLLIN)
        view = memoryview(payload)
        while view:
            events = dict(poller.poll())
            if stop in events:
                return
            if events.get(fd, 0) & (select.POLLERR | select.POLLHUP):
                return  # the child died early: not our problem here
            with contextlib.suppress(BlockingIOError):
                view = view[os.write(fd, view):]
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


# (stream name "stdout" or "stderr", bytes as they came) → None; called on the pipe's thread
OutputSink = Callable[[str, bytes], None]


def _sink(on_output: OutputSink | None, stream: str) -> Callable[[bytes], None] | None:
    return None if on_output is None else functools.partial(on_output, stream)


class _Capture:
    """Drain one output pipe, keeping the first `limit` bytes and counting the rest; this
    thread owns the descriptor and is the only one to close it."""

    def __init__(self, fd: int, limit: int, stop: int,
                 on_chunk: Callable[[bytes], None] | None = None):
        self._fd = fd
        self._stop = stop
        self._limit = max(0, int(limit))
        self._kept = bytearray()
        self._lock = threading.Lock()
        self._on_chunk = on_chunk
        self.dropped = 0

    def run(self) -> None:
        try:
            for chunk in _chunks(self._fd, self._stop):
                with self._lock:
                    room = self._limit - len(self._kept)
                    kept = chunk[:room] if room > 0 else b""
                    self._kept += kept
                    self.dropped += len(chunk) - len(kept)
                if kept and self._on_chunk is not None:
                    self._on_chunk(kept)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def text(self) -> str:
        with self._lock:
            return self._kept.decode("utf-8", errors="replace")


class _ResultReader:
    """Read JSON lines from the result pipe: progress updates, then the final message."""

    def __init__(self, fd: int, max_result_bytes: int,
                 on_progress: Callable[[int], None] | None, stop: int):
        self._fd = fd
        self._stop = stop
        # A body of max_result_bytes can grow up to 6x when JSON-escaped; beyond that the line
        # is discarded rather than held in memory.
        self._max_line = 6 * int(max_result_bytes) + 64 * 1024
        self._on_progress = on_progress
        self.final: dict | None = None
        self.final_at: float | None = None
        self.oversized = False

    def run(self) -> None:
        buffer = bytearray()
        skipping = False
        try:
            for chunk in _chunks(self._fd, self._stop):
                start = 0
                while (newline := chunk.find(b"\n", start)) != -1:
                    piece = chunk[start:newline]
                    if not skipping:
                        buffer += piece
                        self._handle(bytes(buffer))
                    buffer.clear()
                    skipping = False
                    start = newline + 1
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > self._max_line:
                        buffer.clear()
                        skipping = True
                        if self.final is None:
                            self.oversized = True
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def _handle(self, line: bytes) -> None:
        if self.final is not None:
            return
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            return  # not ours: only the bootstrap (or a meddling user) writes here
        if not isinstance(message, dict):
            return
        if "progress" in message:
            self._progress(message["progress"])
        elif "state" in message:
            # A progress callback may take state reports too (its `state` attribute).
            report = getattr(self._on_progress, "state", None)
            if report is not None:
                try:
                    report(message["state"])
                except Exception:
                    logger.exception("taskfn runtime: state callback failed")
        elif "result" in message or "error" in message:
            self.final = message
            self.final_at = time.monotonic()

    def _progress(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or self._on_progress is None:
            return
        try:
            self._on_progress(max(0, min(100, value)))
        except Exception:
            logger.exception("taskfn runtime: on_progress callback failed")
