"""Functions: `taskfn fn deploy|ls|show` and `taskfn run`, over GreenCloud's platform API.
A function is named by its name or its id, so that nobody copies ids by hand."""

import errno
import http.client
import io
import os
import re
import stat
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from taskfn.cli.client import Api, ApiError, check_complete, quote, web_url
from taskfn.cli.output import (
    CliError,
    UsageError,
    api,
    err,
    handled,
    line,
    out,
    pairs,
    payload,
    percent_bar,
    print_json,
    shown,
    table,
    visible,
    when,
)
from taskfn.runtime.packaging import MAX_ENTRIES, MAX_UNZIPPED_BYTES

app = typer.Typer(help="Deploy and list functions.", no_args_is_help=True)
_ID = re.compile(r"^[0-9a-f]{24}$")
DIRECT_UPLOAD_MAX = 4 * 1024 * 1024  # larger zips go through the presigned upload
SKIPPED = {"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache"}
POLL_S = 0.25
CHUNK = 64 * 1024
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
JSON_OPTION = typer.Option("--json", help="print the API's JSON (for scripts)")


def find_function(client: Api, name: str) -> dict | None:
    """The newest of the caller's functions with that name (the list is newest first)."""
    for function in client.paged("/v1/function/list", limit=100_000):
        if function.get("name") == name:
            return function
    return None


def function_id(client: Api, given: str) -> str:
    """An id as it is; a name through the caller's list."""
    if _ID.match(given):
        return given
    found = find_function(client, given)
    if found is None:
        raise CliError(f"no function named {given!r} (see `taskfn fn ls`)")
    return found["id"]


def zip_folder(folder: Path, left_out: list[str] | None = None) -> bytes:
    """The folder as the build wants it: main.py at the top; caches, VCS and hidden files
    left out; entries sorted with a fixed time so the same tree gives the same bytes.

    Only regular files inside the folder go in: a symlink (to /etc/passwd, to ~/.ssh, or to
    a sibling) is never followed, nor a linked folder entered, and a FIFO, socket or device
    is left out (reading a FIFO would wait forever); their names go to `left_out`. A tree
    past the build's limits (entries, bytes unzipped) is refused before it is read."""
    main = folder / "main.py"
    if main.is_symlink():
        raise CliError(f"{folder}/main.py is a symlink: a function's files are zipped as "
                       "they are, never through a link")
    if not main.is_file():
        raise CliError(f"{folder} has no main.py at its top (the function contract)")
    found: list[tuple[Path, str]] = []
    total = 0
    for root, dirs, files in os.walk(folder):  # followlinks=False: a linked dir is not entered
        here = Path(root)
        for name in list(dirs):
            if (here / name).is_symlink() and left_out is not None:
                left_out.append((here / name).relative_to(folder).as_posix() + "/")
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED and not d.startswith(".")
                         and not (here / d).is_symlink())
        for name in sorted(files):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            path = here / name
            relative = path.relative_to(folder).as_posix()
            try:
                info = path.lstat()
            except OSError as error:
                raise CliError(f"cannot read {visible(relative)}: {error.strerror}") from None
            if not stat.S_ISREG(info.st_mode):
                if left_out is not None:
                    left_out.append(relative)
                continue
            found.append((path, relative))
            total += info.st_size
            if len(found) > MAX_ENTRIES:
                raise CliError(f"{folder} holds more than {MAX_ENTRIES} files, the build's "
                               "limit")
            if total > MAX_UNZIPPED_BYTES:
                raise CliError(f"{folder} holds more than {MAX_UNZIPPED_BYTES} bytes, the "
                               f"build's limit (the largest so far: {visible(relative)})")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, relative in found:
            data, mode = _read_regular(path, relative)
            if data is None:  # it changed into something else since it was listed
                if left_out is not None:
                    left_out.append(relative)
                continue
            try:
                info = zipfile.ZipInfo(relative, date_time=(2024, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o100755 if mode & 0o111 else 0o100644) << 16
                archive.writestr(info, data)
            except UnicodeEncodeError:
                raise CliError(f"the file name {visible(relative)} is not UTF-8") from None
    return buffer.getvalue()


def _read_regular(path: Path, relative: str) -> tuple[bytes | None, int]:
    """The bytes and mode of a regular file, opened without following a link (a file
    swapped for a symlink or a FIFO after it was listed gives None)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):  # now a symlink, a socket
            return None, 0
        raise CliError(f"cannot read {visible(relative)}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, 0
        try:
            return file.read(), info.st_mode
        except OSError as error:
            raise CliError(f"cannot read {visible(relative)}: {error.strerror}") from None


def upload_build(client: Api, fid: str, code: bytes) -> str:
    """A build of the zip: in the request when it fits, else PUT to S3 first."""
    if len(code) <= DIRECT_UPLOAD_MAX:
        return client.request("POST", f"/v1/build/{quote(fid)}", body=code,
                              content_type="application/octet-stream").json()["id"]
    upload = client.request("POST", f"/v1/build/{quote(fid)}/upload",
                            body={"size": len(code)}).json()
    url = web_url(upload["url"], "the upload URL")  # never a file:// the API names
    request = urllib.request.Request(url, data=code, method=upload.get("method", "PUT"),
                                     headers=upload.get("headers") or {})
    try:
        urllib.request.urlopen(request, timeout=300).close()
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise CliError(f"the upload of the zip failed: {reason}") from None
    return client.request("POST", f"/v1/build/{quote(fid)}",
                          query={"upload": upload["uploadId"]}).json()["id"]


def wait_build(client: Api, build_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    with err.status("building…"):
        while True:
            build = client.get(f"/v1/build/{quote(build_id)}")
            if build["status"] != "PENDING":
                return build
            if time.monotonic() > deadline:
                raise CliError(f"build {build_id} still pending after {timeout:.0f} s")
            time.sleep(POLL_S)


@app.command("deploy")
@handled
def deploy(
    folder: Annotated[Path, typer.Argument(help="the function's folder (main.py at its top)")],
    name: Annotated[str | None, typer.Option(
        "--name", help="the function's name (the folder's name, letters and digits only)")
    ] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Zip a folder, create the function if none has that name, build it, wait for the
    build and print its log; the exit status is 1 when the build failed."""
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    name = name or re.sub(r"[^A-Za-z0-9]", "", folder.resolve().name)
    if not name:
        raise UsageError("give the function a --name (letters and digits)")
    left_out: list[str] = []
    code = zip_folder(folder, left_out)
    if left_out:
        err.print(Text(f"left out (links and special files are never zipped): "
                       f"{', '.join(visible(n) for n in left_out)}", style="dim"))
    client = api()
    found = find_function(client, name)
    if found is None:
        fid = client.request("POST", "/v1/function", body={"name": name, "lang": "PY"}).json()["id"]
        err.print(Text(f"created function {visible(name)} ({visible(fid)})"))
    else:
        fid = found["id"]
    build = wait_build(client, upload_build(client, fid, code))
    if as_json:
        print_json({"functionId": fid, "name": name, **build})
    else:
        for entry in build.get("log") or []:
            out.print(Text(f"  {visible(entry)}"))
        verdict = "[green]SUCCESS[/green]" if build["status"] == "SUCCESS" else "[red]FAILED[/red]"
        out.print(f"build {shown(build['id'])} of {shown(name)} ({shown(fid)}): {verdict}")
    if build["status"] != "SUCCESS":
        last = (build.get("log") or ["no log"])[-1]
        raise CliError(f"build {build['id']} failed: {last}")


@app.command("ls")
@handled
def ls(
    tag: Annotated[str | None, typer.Option(help="only the functions with this tag id")] = None,
    limit: Annotated[int, typer.Option(help="at most this many", min=1)] = 100,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Your functions, newest first."""
    functions = api().paged("/v1/function/list", {"tag": tag} if tag else None, limit=limit)
    if as_json:
        print_json(functions)
        return
    table(("ID", "Name", "Lang", "Description", "Created"),
          ((f["id"], f["name"], f["lang"], f.get("description"), when(f.get("createdAt")))
           for f in functions), empty="no functions yet: `taskfn fn deploy DIR`")


@app.command("show")
@handled
def show(
    function: Annotated[str, typer.Argument(help="its name or id")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One function: its build, capabilities and counters."""
    client = api()
    found = client.get(f"/v1/function/{quote(function_id(client, function))}")
    if as_json:
        print_json(found)
        return
    metrics, caps = found.get("metrics") or {}, found.get("capabilities") or {}
    table(("Field", "Value"), [
        ("ID", found["id"]), ("Name", found["name"]), ("Lang", found.get("lang")),
        ("Build", found.get("buildId")), ("Paused", found.get("paused")),
        ("Created", when(found.get("createdAt"))),
        ("Capabilities", ", ".join(f"{k} {v}" for k, v in caps.items())),
        ("Tasks", ", ".join(f"{k} {v}" for k, v in metrics.items())),
    ])


def failure(client: Api, task_id: str, status: int | None = None) -> str | None:
    """Why the task failed, or None when it did not: the platform's own verdict (a function
    may answer 500 without failing), read through the Cell API's view of the same task;
    where that view is refused, a 5xx answer counts as a failure."""
    try:
        task = client.request("POST", "/v1/tasks/get_by_task_guid.r3",
                              body={"task_guid": task_id}).json().get("task") or {}
    except ApiError:
        return f"it answered {status}" if status is not None and status >= 500 else None
    if task.get("failed"):
        return task.get("failure_reason") or "failed"
    return None


def wait_task(client: Api, task_id: str, *, bar: bool = True) -> dict:
    """Poll the task until it has finished, its own progress driving a bar on stderr."""
    if not bar:
        while (task := client.get(f"/v1/task/{quote(task_id)}")).get("finished", "0") == "0":
            time.sleep(POLL_S)
        return task
    with percent_bar() as progress:
        bar_id = progress.add_task(f"task {visible(task_id)}", total=100)
        while True:
            task = client.get(f"/v1/task/{quote(task_id)}")
            done = task.get("finished", "0") != "0"
            progress.update(bar_id, completed=_percent(task.get("progress")))
            if done:
                return task
            time.sleep(POLL_S)


def _percent(value: Any) -> float:
    try:
        return min(max(float(value or 0), 0.0), 100.0)
    except (TypeError, ValueError):
        return 0.0


ANY_ANSWER = tuple(s for s in range(100, 600) if not 300 <= s < 400)  # the function's own
NOT_FINISHED = b'{"message":"task has not finished yet"}'


def result(client: Api, task_id: str, sink: Any) -> tuple[int, str, bool]:
    """The task's answer, written to `sink` as the function gave it, chunk by chunk (a large
    body comes through S3, its status in X-Taskfn-Status): its status, content type, and
    whether it ended without a newline."""
    for _ in range(40):  # `finished` may be seen a moment before the result
        with client.open("GET", f"/v1/task/{quote(task_id)}/result", ok=ANY_ANSWER) as response:
            status, head = response.status, response.read(256)
            if (status == 404 and len(head) < 256
                    and head.replace(b" ", b"") == NOT_FINISHED):
                time.sleep(POLL_S)
                continue
            real = (getattr(response, "redirected_from", None) or {}).get("X-Taskfn-Status")
            last = head
            sink.write(head)
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                last = chunk
            sink.flush()
            check_complete(response)
            if real and real.isdigit():
                status = int(real)
            return (status, response.headers.get("Content-Type", ""),
                    bool(last) and not last.endswith(b"\n"))
    raise CliError(f"task {task_id} finished but its result cannot be read yet")


@handled
def run(
    function: Annotated[str, typer.Argument(help="the function's name or id")],
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="the body: JSON, or @file (sent as it is)")] = None,
    query: Annotated[list[str] | None, typer.Option(
        "--query", "-q", help="a query parameter name=value (repeatable)")] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", "-w", help="wait for the result (a bar shows the task's progress)")] = False,
    idempotency_key: Annotated[str | None, typer.Option(
        help="a retry with the same key runs nothing again")] = None,
) -> None:
    """Run a function as a task. Prints the task's id, or with --wait the result as the
    function answered it; the exit status is then 1 when the task failed."""
    body, content_type = payload(data)  # every usage error before any request
    params = pairs(query, "--query")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise UsageError("--idempotency-key takes 1 to 255 printable ASCII characters")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    client = api()
    fid = function_id(client, function)
    # No body at all when none is given (b"" would go as a form, with its content type).
    task_id = client.request("POST", f"/v1/task/{quote(fid)}", query=params, body=body,
                             content_type=content_type, headers=headers).json()["id"]
    if not wait:
        line(task_id)
        return
    wait_task(client, task_id)
    status, kind, open_line = result(client, task_id, sys.stdout.buffer)
    if out.is_terminal and open_line:
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
    reason = failure(client, task_id, status)
    if reason is not None:
        raise CliError(f"task {task_id} failed ({status}): {reason}")
    err.print(Text(visible(f"task {task_id}: {status} {kind}"), style="dim"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="fn")
    root.command("run")(run)
