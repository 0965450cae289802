"""Child side of the Python runtime: the program each user-code child process runs.

Started by taskfn.runtime.python as `python -I -B -u bootstrap.py CONFIG_JSON`, where the config
holds the result pipe (result_fd) and the sandbox's identity. It confines itself at once (see
_confine), gets ready, sends {"ready": true} and blocks; the job arrives on stdin as one line of
JSON (the code directory, limits, deadline) followed by the event. It then limits itself,
imports the user's main.py, calls handler(event, context), shapes the return value into an
HTTP-style response and sends JSON lines to the parent: {"progress": n} and {"state": {state,
message, uri}} any number of times, then exactly one {"result": ...} or {"error": ...}. A run
started cold sends the job at once; a pre-started one (taskfn.runtime.pool) waits for it. It
must stay standard-library only and must not import taskfn: user code must not be able to
reach the platform.
"""

# Everything the bootstrap needs is imported before the user's code directory goes on sys.path,
# so a user file named json.py or base64.py cannot replace what the runtime itself uses.
import base64
import binascii
import contextlib
import ctypes
import errno
import json
import math
import os
import resource
import sys
import threading
import time
import traceback
import types

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
# By machine: the audit arch, and the numbers of the calls the filter looks at.
_CALLS = {
    "x86_64": {"arch": 0xC000003E, "setsid": 112, "setpgid": 109, "unshare": 272,
               "setns": 308, "clone": 56, "clone3": 435, "socket": 41, "add_key": 248,
               "request_key": 249, "keyctl": 250},
    "aarch64": {"arch": 0xC00000B7, "setsid": 157, "setpgid": 154, "unshare": 97,
                "setns": 268, "clone": 220, "clone3": 435, "socket": 198, "add_key": 217,
                "request_key": 218, "keyctl": 219},
}
_AF_UNIX = 1
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
_NEW_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000 | 0x00000080
# mount(2)'s flags.
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 0x1, 0x2, 0x4, 0x20
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000
_TMP_MB = 512  # the private tmp's size when the config gives none
_RESERVE_BYTES = 4 * 1024 * 1024  # freed on failure so the error can still be reported
_MAX_MESSAGE_CHARS = 4096
_JSON_TYPE = "application/json"
_TEXT_TYPE = "text/plain"
_BINARY_TYPE = "application/octet-stream"
_NOT_SERIALIZABLE = (TypeError, ValueError, RecursionError, OverflowError)

_reserve: bytearray | None = None
# The machine's directory of the working dir, held (an O_PATH descriptor) only until the job
# arrives: a pre-started sandbox that gets none removes its own working dir through it.
_workdir_parent: int | None = None


class ResultError(Exception):
    """The handler returned something that cannot become a response; carries the reason."""


class _Channel:
    """The result pipe: one JSON object per line, thread-safe, closed after the final message."""

    def __init__(self, fd: int):
        self._fd = fd
        self._lock = threading.Lock()
        self._closed = False
        self._last_progress: int | None = None

    def progress(self, percent: int) -> None:
        with self._lock:
            if self._closed or percent == self._last_progress:
                return  # repeating the same value would only cost the parent work
            self._last_progress = percent
            self._write({"progress": percent})

    def state(self, report: dict) -> None:
        """A state report ({"state": {state, message, uri}}), any number of times."""
        with self._lock:
            if not self._closed:
                self._write({"state": report})

    def ready(self) -> bool:
        """A pre-started sandbox says it can take a job (sent once, before any other line)."""
        with self._lock:
            return self._write({"ready": True})

    def final(self, message: dict) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return self._write(message)

    def _write(self, message: dict) -> bool:
        try:
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: let JSON escape them
            line = json.dumps(message, separators=(",", ":")) + "\n"
            data = line.encode("ascii")
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:  # the parent is gone; nobody is listening any more
            return False
        return True


class Context:
    """What the handler gets as `context`: identity, time left, and a progress reporter."""

    def __init__(self, task_id: str, function_id: str, deadline: float, timeout_s: float,
                 memory_mb: int, channel: _Channel):
        self.task_id = task_id
        self.function_id = function_id
        self.memory_limit_in_mb = memory_mb
        self._deadline = deadline
        self._timeout_ms = int(timeout_s * 1000)
        self._channel = channel

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the platform kills this run (never negative)."""
        left = int((self._deadline - time.monotonic()) * 1000)
        return max(0, min(left, self._timeout_ms))

    def set_progress(self, percent: int) -> None:
        """Report progress as a percentage; clamped to 0-100."""
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise ValueError(f"progress must be a number from 0 to 100, got {percent!r}")
        if isinstance(percent, float) and not math.isfinite(percent):
            raise ValueError(f"progress must be a finite number, got {percent!r}")
        self._channel.progress(max(0, min(100, int(percent))))

    _STATES = ("working", "idle", "complete", "failed")

    def report_state(self, state: str, message: str = "", uri: str = "") -> None:
        """Report the conversation's state (Coder's working, idle, complete or failed), with
        a message and a URI; the task's current_state shows the last one."""
        if state not in self._STATES:
            raise ValueError(f"state must be one of {', '.join(self._STATES)}, got {state!r}")
        if not isinstance(message, str) or not isinstance(uri, str):
            raise ValueError("message and uri must be strings")
        self._channel.state({"state": state, "message": message[:_MAX_MESSAGE_CHARS],
                             "uri": uri[:_MAX_MESSAGE_CHARS]})

    def __repr__(self) -> str:
        return f"Context(task_id={self.task_id!r}, function_id={self.function_id!r})"


def main() -> None:
    """Run one invocation; always ends the process with os._exit (no lingering threads)."""
    global _reserve
    config = json.loads(sys.argv[1])
    _confine(config.get("sandbox") or {})
    _setup_stdio()
    channel = _Channel(int(config["result_fd"]))
    os.set_inheritable(int(config["result_fd"]), False)  # user subprocesses must not hold it
    config.update(_wait_for_job(channel))
    try:
        event = _read_event()
    except ValueError as error:
        channel.final(_error("Runtime.InvalidEvent", f"event is not valid JSON: {error}"))
        _exit(1)
    _apply_limits(config)
    if _reserve is None:
        _reserve = bytearray(_RESERVE_BYTES)
    code_dir = str(config["code_dir"])
    sys.argv = [os.path.join(code_dir, "main.py")]
    sys.path.insert(0, code_dir)
    context = Context(
        task_id=str(config.get("task_id", "")),
        function_id=str(config.get("function_id", "")),
        deadline=float(config["deadline"]),
        timeout_s=float(config["timeout_s"]),
        memory_mb=int(config["memory_mb"]),
        channel=channel,
    )
    try:
        value = _invoke(event, context)
    except SystemExit as stop:
        _exit(_exit_code(stop))
    except BaseException as error:  # user code may raise anything, even KeyboardInterrupt
        _release_reserve()
        _report_exception(error, channel, int(config["memory_mb"]))
        _exit(1)
    try:
        response = shape_result(value, int(config["max_result_bytes"]))
    except ResultError as error:
        channel.final(_error("Runtime.InvalidResult", str(error), reason=str(error)))
        _exit(1)
    except MemoryError:
        _release_reserve()
        reason = f"out of memory while encoding the result (limit {config['memory_mb']} MB)"
        channel.final(_error("MemoryError", reason))
        _exit(1)
    except Exception as error:  # e.g. a dict subclass whose iteration raises
        reason = f"result is not JSON serializable: {_one_line(_safe_str(error))}"
        channel.final(_error("Runtime.InvalidResult", reason, reason=reason))
        _exit(1)
    _exit(0 if channel.final({"result": response}) else 1)


def _invoke(event: object, context: Context) -> object:
    """Import main and call main.handler(event, context)."""
    module = __import__("main")  # the C import path hides importlib frames in tracebacks
    handler = getattr(module, "handler", None)
    if handler is None:
        raise _RuntimeFailure("Runtime.HandlerNotFound", "main.py does not define handler")
    if not callable(handler):
        raise _RuntimeFailure(
            "Runtime.HandlerNotFound",
            f"main.handler is not callable (it is {type(handler).__name__})",
        )
    value = handler(event, context)
    if isinstance(value, types.CoroutineType):
        value.close()  # never awaited on purpose; closing avoids a RuntimeWarning
        raise _RuntimeFailure(
            "Runtime.InvalidHandler",
            "handler is async; async handlers are not supported, "
            "use 'def handler(event, context)'",
        )
    return value


class _RuntimeFailure(Exception):
    """A failure the runtime detected (not raised by user code); reported without traceback."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def shape_result(value: object, max_result_bytes: int) -> dict:
    """Turn a handler's return value into {statusCode, headers, body, isBase64Encoded}."""
    if isinstance(value, dict) and "statusCode" in value:
        status = value["statusCode"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ResultError(f"statusCode must be an integer from 100 to 599, got {status!r}")
        headers = _headers(value.get("headers"))
        body, is_base64, default_type = _body(value.get("body"), value.get("isBase64Encoded"))
    else:
        status, headers = 200, {}
        body, is_base64, default_type = _body(value, False, none_is_json=True)
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = default_type
    size = len(body.encode("utf-8")) + sum(len(k) + len(v) for k, v in headers.items())
    if size > max_result_bytes:
        raise ResultError(f"result larger than {max_result_bytes} bytes")
    return {"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": is_base64}


def _body(body: object, base64_flag: object, none_is_json: bool = False) -> tuple[str, bool, str]:
    """(text, is_base64, default Content-Type) for a body value."""
    if isinstance(body, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(body)).decode("ascii"), True, _BINARY_TYPE
    if isinstance(body, str):
        if base64_flag is True:  # Lambda style: the handler already base64-encoded the body
            try:
                base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise ResultError("isBase64Encoded is true but body is not valid base64") from None
            return body, True, _BINARY_TYPE
        try:
            body.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ResultError(f"result body is not valid Unicode text: {error.reason}") from None
        return str(body), False, _TEXT_TYPE
    if body is None and not none_is_json:
        return "", False, _TEXT_TYPE
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(body, allow_nan=False)
    except _NOT_SERIALIZABLE as error:
        raise ResultError(f"result is not JSON serializable: {_one_line(error)}") from None
    return text, False, _JSON_TYPE


def _headers(raw: object) -> dict[str, str]:
    """Validate response headers: a dict of names to scalar values, no line breaks."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ResultError(f"headers must be an object, got {type(raw).__name__}")
    headers: dict[str, str] = {}
    content_type: str | None = None
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise ResultError(f"header names must be non-empty strings, got {name!r}")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise ResultError(f"header {name!r} must be a string, got {type(value).__name__}")
        if any(ch in name + text for ch in "\r\n\x00") or any(ch in name for ch in " :"):
            raise ResultError(f"invalid header {name!r}")
        if name.lower() == "content-type":
            content_type = text  # one canonical key, whatever case the handler used
        else:
            headers[name] = text
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def _report_exception(error: BaseException, channel: _Channel, memory_mb: int) -> None:
    """Traceback to stderr (the user sees it in the task's logs), a short error to the parent."""
    if isinstance(error, _RuntimeFailure):
        message = str(error)
        channel.final(_error(error.error_type, message, reason=message))
        return
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the user does not need to see the runtime's own frames
    error_type = type(error).__name__
    message = _safe_str(error)
    if isinstance(error, MemoryError):
        traceback.clear_frames(tb)  # drop the user's locals: that is where the memory went
        if not message:
            message = f"out of memory (memory limit {memory_mb} MB)"
    with contextlib.suppress(BaseException):
        traceback.print_exception(type(error), error, tb, file=sys.stderr)
    channel.final(_error(error_type, message))


def _error(error_type: str, message: str, reason: str | None = None) -> dict:
    """The final error message; `reason` becomes the parent's one-line failure_reason."""
    message = message[:_MAX_MESSAGE_CHARS]
    if reason is None:
        reason = f"{error_type}: {message}" if message else error_type
    return {"error": {"type": error_type, "message": message, "reason": _one_line(reason)}}


def _safe_str(error: BaseException) -> str:
    """str(error), even when the user's __str__ is broken."""
    try:
        return str(error)
    except BaseException:
        return f"<unprintable {type(error).__name__}>"


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= 500 else line[:497] + "..."


def _wait_for_job(channel: _Channel) -> dict:
    """Tell the parent we are ready, then block until it sends the job's config line.

    EOF means the pool closed or its process died: leave quietly, taking the (still empty)
    private temp dir along, so an orphaned sandbox leaves nothing behind.
    """
    global _reserve
    # Work every run does anyway, done while nobody waits: the reserve (zero-filling 4 MB takes
    # milliseconds) and the compiler's one-time set-up (the first compile() costs ~2 ms).
    _reserve = bytearray(_RESERVE_BYTES)
    compile("def handler(event, context):\n    return None\n", "<warm-up>", "exec")
    if not channel.ready():
        _exit(0)
    line = sys.stdin.buffer.readline()
    if not line.strip():
        with contextlib.suppress(OSError):
            if _workdir_parent is None:
                os.rmdir(os.getcwd())
            else:  # this namespace's is a bind of the machine's
                os.rmdir(os.path.basename(os.getcwd()), dir_fd=_workdir_parent)
        _exit(0)
    _forget_workdir_parent()
    try:
        job = json.loads(line)
        if not isinstance(job, dict):
            raise ValueError("not an object")
    except ValueError as error:
        channel.final(_error("Runtime.InvalidJob", f"job is not valid: {error}"))
        _exit(1)
    return job


def _forget_workdir_parent() -> None:
    """Before anything of the job runs: no descriptor into the machine's /tmp is left."""
    global _workdir_parent
    if _workdir_parent is not None:
        os.close(_workdir_parent)
        _workdir_parent = None


def _read_event() -> object:
    """All of stdin is the event; afterwards fd 0 is /dev/null so user code cannot block on it."""
    data = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return json.loads(data) if data.strip() else None


def _confine(sandbox: dict) -> None:
    """Become the sandbox's identity for good, before the job (and any user code) arrives.

    no_new_privs: no setuid program can give back privileges. The process limit bounds a fork
    bomb (and, lowered only, marks every process this run starts). A separate user (the
    parent is root): an IPC namespace of its own (SysV and POSIX IPC objects die with the
    run, and no run sees another's) and a mount namespace with temp dirs of its own (see
    _private_tmp); the directories of the imports are opened and reached through their
    descriptors, since the interpreter may live where that user cannot go (a root-only home);
    then every id becomes the sandbox's. Not dumpable: other sandboxes of a shared user can
    neither read this one's memory nor trace it. Umask 077: what the run (and every tool it
    starts) creates is its own to read, not other runs' (a shared user's runs still share the
    machine's /tmp).
    """
    os.umask(0o077)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    uid = sandbox.get("uid")
    if uid is not None:
        # Before the filter, which refuses namespaces.
        os.unshare(os.CLONE_NEWIPC | os.CLONE_NEWNS)
        _private_tmp(libc, sandbox)
    _filter_calls(libc)
    processes = sandbox.get("max_processes")
    if processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (int(processes), int(processes)))
    if uid is not None:
        _reach_imports_by_descriptor()
        os.setgroups([])
        os.setresgid(int(uid), int(uid), int(uid))
        os.setresuid(int(uid), int(uid), int(uid))
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _private_tmp(libc: ctypes.CDLL, sandbox: dict) -> None:
    """Give the run temp dirs of its own: the machine's /tmp, /var/tmp, /dev/shm and /run/lock
    are shared by every sandbox, and a run that pre-creates another's predictable name there
    (a world-writable file, a 0777 directory) would read what the other writes to it.

    In the mount namespace of its own (nothing propagates back to the machine's), one fresh
    tmpfs, size-limited, takes the place of all of them (a directory of it on each: one bound
    for all of the run's temp space, which the run's memory cgroup also counts); it goes
    when the run's last process does. What the run needs of what those dirs hid is bound
    back at the same path, and nothing else: its own working dir (cwd, HOME, TMPDIR:
    read-write, as before), the directory its code is staged in, and the interpreter's
    prefixes and import path (read-only: a venv or a clone of the project may live under
    /tmp). They are reached through descriptors opened in the new namespace before the
    tmpfs covered them, and closed before the run goes on: a descriptor of anything under
    the machine's /tmp would lead back to all of it by "..", which a bind mount's root does
    not. Last, cwd moves to the bound copy of the working dir, for the same reason."""
    global _workdir_parent
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    hidden: list[str] = []
    for place in sandbox.get("tmp_dirs") or ():
        real = os.path.realpath(place)
        if os.path.isdir(real) and real != "/" and not any(
                real == top or _inside(real, top) or _inside(top, real) for top in hidden):
            hidden.append(real)
    if not hidden:
        return
    workdir = os.getcwd()
    wanted = [(workdir, True)]
    if sandbox.get("code_root"):
        wanted.append((str(sandbox["code_root"]), False))
    for path in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                 *sys.path):
        wanted.append((path, False))
    binds: dict[str, bool] = {}
    for path, writable in wanted:
        real = os.path.realpath(path) if path else ""
        if os.path.exists(real) and any(_inside(real, top) for top in hidden):
            binds[real] = binds.get(real, False) or writable
    if workdir in binds:  # for removing it from the machine's /tmp, should no job come
        _workdir_parent = os.open(os.path.dirname(workdir), os.O_PATH | os.O_DIRECTORY)
    sources = {path: os.open(path, os.O_PATH) for path in binds}
    try:
        _mount(libc, "tmpfs", hidden[0], "tmpfs", _MS_NOSUID | _MS_NODEV,
               f"size={int(sandbox.get('tmp_mb') or _TMP_MB)}m,nr_inodes=65536,mode=0755")
        for index in range(len(hidden)):
            os.mkdir(os.path.join(hidden[0], str(index)))
            os.chmod(os.path.join(hidden[0], str(index)), 0o1777)
        for index in [*range(1, len(hidden)), 0]:  # the first covers the tmpfs's root last
            _mount(libc, os.path.join(hidden[0], str(index)), hidden[index], None, _MS_BIND)
        done: list[str] = []
        for path in sorted(binds):
            writable = binds[path]
            if not writable and any(_inside(path, outer) for outer in done):
                continue  # already there, with the directory around it
            _mount_point(path, os.path.isdir(f"/proc/self/fd/{sources[path]}"))
            _mount(libc, f"/proc/self/fd/{sources[path]}", path, None, _MS_BIND)
            if not writable:
                _mount(libc, None, path, None,
                       _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
            done.append(path)
    finally:
        for fd in sources.values():
            os.close(fd)
    os.chdir(workdir)


def _mount(libc: ctypes.CDLL, source: str | None, target: str, kind: str | None, flags: int,
           data: str | None = None) -> None:
    def encoded(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    if libc.mount(encoded(source), encoded(target), encoded(kind), ctypes.c_ulong(flags),
                  encoded(data)) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"mount {source or kind} on {target}: {os.strerror(number)}")


def _mount_point(path: str, directory: bool) -> None:
    """An empty directory (or file) at `path` in the private tmp, its parents made as root's
    directories anyone may pass (umask 077 is in force already)."""
    parent = os.path.dirname(path)
    missing = []
    while not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory_path in reversed(missing):
        os.mkdir(directory_path)
        os.chmod(directory_path, 0o755)
    if os.path.lexists(path):
        return
    if directory:
        os.mkdir(path)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _inside(path: str, top: str) -> bool:
    return path != top and path.startswith(top.rstrip("/") + "/")


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def _filter_calls(libc: ctypes.CDLL) -> None:
    """A seccomp filter. setsid and setpgid succeed and do nothing, so every process of the run
    stays in its process group, which the parent kills at once (no fork outruns a group
    kill). No namespaces: unshare, setns and clone with a CLONE_NEW* flag are refused (a
    kernel's namespaces are a large surface, and a run has no use for them); clone3, whose
    flags a filter cannot read, answers ENOSYS, and the C library falls back to clone. No
    Unix-domain sockets of its own (socketpair still works): through them runs could hand
    each other descriptors, or reach local daemons. No kernel keyrings: keys would outlive the
    run for the next one of its uid. Calls of another ABI (32-bit, x32) are refused, so none
    bypasses the filter."""
    machine = os.uname().machine
    if machine not in _CALLS:
        print(f"taskfn: no system call filter on {machine}", file=sys.stderr)
        return
    number = _CALLS[machine]
    load, equal, at_least, any_bit, give = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF opcodes
    allow, errno_of = 0x7FFF0000, 0x00050000
    # (label, code, jump if true, jump if false, k): jumps name labels; None is the next one.
    listing = [
        ("", load, None, None, 4),  # seccomp_data.arch
        ("", equal, None, "refuse", number["arch"]),
        ("", load, None, None, 0),  # seccomp_data.nr
        ("", at_least, "refuse", None, 0x40000000),  # x32
        ("", equal, "pretend", None, number["setsid"]),
        ("", equal, "pretend", None, number["setpgid"]),
        ("", equal, "refuse", None, number["unshare"]),
        ("", equal, "refuse", None, number["setns"]),
        ("", equal, "refuse", None, number["add_key"]),
        ("", equal, "refuse", None, number["request_key"]),
        ("", equal, "refuse", None, number["keyctl"]),
        ("", equal, "no such call", None, number["clone3"]),
        ("", equal, "socket", None, number["socket"]),
        ("", equal, None, "allow", number["clone"]),
        ("", load, None, None, 16),  # the low half of seccomp_data.args[0]: clone's flags
        ("", any_bit, "refuse", "allow", _NEW_NAMESPACES),
        ("socket", load, None, None, 16),  # socket's domain
        ("", equal, "refuse", None, _AF_UNIX),
        ("allow", give, None, None, allow),
        ("pretend", give, None, None, errno_of),  # 0: success, and nothing changed
        ("refuse", give, None, None, errno_of | errno.EPERM),
        ("no such call", give, None, None, errno_of | errno.ENOSYS),
    ]
    at = {label: index for index, (label, *_) in enumerate(listing) if label}
    program = [(code, at[true] - index - 1 if true else 0,
                at[false] - index - 1 if false else 0, k)
               for index, (_, code, true, false, k) in enumerate(listing)]
    instructions = (_Instruction * len(program))(*program)
    filter_program = _Program(len(program), instructions)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(filter_program), 0,
                  0) != 0:
        failure = ctypes.get_errno()
        if failure != errno.EINVAL:  # EINVAL: a kernel without seccomp filters
            raise OSError(failure, "prctl(PR_SET_SECCOMP)")
        print("taskfn: this kernel has no seccomp filters; a run may leave its process group",
              file=sys.stderr)


def _reach_imports_by_descriptor() -> None:
    """Point sys.path, and the search paths of packages already imported (encodings, json…),
    at descriptors of their directories, opened while they are still reachable."""
    moved: dict[str, str] = {}
    for index, entry in enumerate(sys.path):
        if os.path.isdir(entry):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            moved[entry] = sys.path[index] = f"/proc/self/fd/{fd}"
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if not isinstance(paths, list):
            continue
        for index, path in enumerate(paths):
            for old, new in moved.items():
                if isinstance(path, str) and path.startswith(old + os.sep):
                    paths[index] = new + path[len(old):]
                    break
    sys.path_importer_cache.clear()


def _apply_limits(config: dict) -> None:
    """Lower soft and hard limits (irreversible for an unprivileged process) before user code."""
    timeout_s = float(config["timeout_s"])
    cpu_s = math.ceil(timeout_s) + 1
    _limit(resource.RLIMIT_AS, int(config["memory_mb"]) * 1024 * 1024)
    _limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)  # soft: SIGXCPU; hard: SIGKILL
    _limit(resource.RLIMIT_NOFILE, int(config["max_open_files"]))
    _limit(resource.RLIMIT_FSIZE, int(config["max_file_bytes"]))
    _limit(resource.RLIMIT_CORE, 0)


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError) as error:
        print(f"taskfn: could not set resource limit {which}: {error}", file=sys.stderr)


def _setup_stdio() -> None:
    """UTF-8 output that never fails on odd characters."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")


def _release_reserve() -> None:
    global _reserve
    _reserve = None


def _exit_code(stop: SystemExit) -> int:
    """The exit status Python itself would use for this SystemExit."""
    code = stop.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(BaseException):
        print(code, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """Flush and leave now: no atexit hooks, no waiting for threads the user left running."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
