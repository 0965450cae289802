"""Tasks: `taskfn tasks ls|show`, `taskfn logs` and `taskfn csv`, over the platform API."""

import contextlib
import os
import stat
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from taskfn.cli.client import Api, check_complete, quote
from taskfn.cli.functions import JSON_OPTION, POLL_S, failure, function_id
from taskfn.cli.output import (
    CliError,
    api,
    download_bar,
    err,
    handled,
    print_json,
    table,
    visible,
    when,
    write_raw,
)

app = typer.Typer(help="List and inspect tasks.", no_args_is_help=True)
CHUNK = 64 * 1024


@app.command("ls")
@handled
def ls(
    function: Annotated[str | None, typer.Option(
        "--function", "-f", help="only this function's (name or id)")] = None,
    status: Annotated[str | None, typer.Option(
        "--status", "-s", help="an HTTP status, 0, pending, succeeded or failed")] = None,
    limit: Annotated[int, typer.Option(help="at most this many", min=1)] = 20,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Your tasks, newest first; status is the function's HTTP status, 0 until finished."""
    client = api()
    query = {}
    if function:
        query["functionId"] = function_id(client, function)
    if status:
        query["status"] = status
    tasks = client.paged("/v1/task/list", query, limit=limit)
    if as_json:
        print_json(tasks)
        return
    table(("ID", "Issued", "Progress", "Status"),
          ((t["id"], when(t.get("issued")), f"{t.get('progress', 0)}%", t.get("status") or "-")
           for t in tasks), empty="no tasks")


@app.command("show")
@handled
def show(
    task: Annotated[str, typer.Argument(help="the task's id")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One task: its times, progress and where it ran."""
    client = api()
    found = client.get(f"/v1/task/{quote(task)}")
    if as_json:
        print_json(found)
        return
    finished = found.get("finished", "0") != "0"
    reason = failure(client, task) if finished else None
    state = ("failed: " + reason) if reason else ("finished" if finished else "running")
    table(("Field", "Value"), [
        ("ID", task), ("Function", found.get("functionId")), ("State", state),
        ("Progress", f"{found.get('progress', 0)}%"), ("Issued", when(found.get("issued"))),
        ("Assigned", when(found.get("assigned"))), ("Finished", when(found.get("finished"))),
        ("Node", found.get("node")), ("Timeout", f"{found.get('timeout')} s"),
        ("Triggered by", found.get("triggeredBy") or "-"),
    ])


def _write_new(shown: dict[str, int], logs: dict) -> None:
    """What was not printed yet of each stream, to the matching stream of ours."""
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        text = logs.get(name) or ""
        if not isinstance(text, str):
            text = str(text)
        if len(text) > shown[name]:
            stream.flush()  # what went through the text layer first
            write_raw(stream, text[shown[name]:])  # as `cat` would: bytes, never markup
            shown[name] = len(text)


def _dropped(logs: dict) -> None:
    for name in ("stdout", "stderr"):
        if logs.get(f"{name}Dropped"):
            err.print(Text(f"({visible(logs[f'{name}Dropped'])} bytes of {name} were not "
                           "kept)", style="dim"))


def follow(client: Api, task: str) -> dict:
    """Print the logs as they grow until the task has finished, then the rest. A platform
    task's logs are kept when it ends: until something is printed, a spinner on a terminal
    shows its progress (stopped first, since a live display would take over stdout)."""
    shown = {"stdout": 0, "stderr": 0}
    status = err.status(Text(f"task {visible(task)} running…"))
    status.start()
    try:
        while True:
            found = client.get(f"/v1/task/{quote(task)}")
            finished = found.get("finished", "0") != "0"
            logs = client.get(f"/v1/task/{quote(task)}/logs")
            if logs.get("stdout") or logs.get("stderr"):
                status.stop()
            _write_new(shown, logs)
            if finished:
                return logs
            status.update(Text(f"task {visible(task)} running… "
                               f"{visible(found.get('progress') or 0)}%"))
            time.sleep(POLL_S * 2)
    finally:
        status.stop()


def newest_task(client: Api) -> str:
    """The caller's newest task: what `taskfn logs` shows when given none."""
    newest = client.get("/v1/task/list", query={"limit": "1"})
    if not newest:
        raise CliError("no tasks yet: `taskfn run FN` starts one")
    return newest[0]["id"]


@handled
def logs(
    task: Annotated[str | None, typer.Argument(
        help="the task's id (default: your newest task)", show_default=False)] = None,
    follow_: Annotated[bool, typer.Option(
        "--follow", "-f", help="follow until the task ends")] = False,
) -> None:
    """A task's stdout (on stdout) and stderr (on stderr)."""
    client = api()
    if task is None:
        task = newest_task(client)
        err.print(Text(f"task {visible(task)}", style="dim"))
    if follow_:
        found = follow(client, task)
    else:
        found = client.get(f"/v1/task/{quote(task)}/logs")
        _write_new({"stdout": 0, "stderr": 0}, found)
    _dropped(found)


@handled
def csv(
    function: Annotated[str, typer.Argument(help="the function's name or id")],
    since: Annotated[str | None, typer.Option(help="from this day, yyyy-mm-dd (UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="to this day, yyyy-mm-dd (UTC)")] = None,
    schedule: Annotated[str | None, typer.Option(help="only the tasks of this schedule")] = None,
    plain: Annotated[bool, typer.Option(
        "--plain", help="bodies as text, not base64")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="the file to write (stdout when left out)")] = None,
) -> None:
    """Export a function's tasks as CSV (ID, IssuedAt, Status, ContentType, Body)."""
    client = api()
    fid = function_id(client, function)
    query = {"dateSince": since, "dateUntil": until, "scheduleId": schedule,
             "showPlain": "true" if plain else None}
    with client.open("GET", f"/v1/task/{quote(fid)}/csv", query=query) as response:
        length = response.headers.get("Content-Length") or ""
        total = int(length) if length.isdigit() and int(length) > 0 else None
        # -o: a new file beside the target, renamed over it once the whole export is in; an
        # error or Ctrl-C halfway leaves the old file as it was and no partial one.
        temporary = _new_beside(output) if output else None
        target = temporary[1] if temporary else sys.stdout.buffer
        written = 0
        try:
            with download_bar() as bar:
                bar_id = bar.add_task("csv", total=total)
                while chunk := response.read(CHUNK):
                    target.write(chunk)
                    written += len(chunk)
                    bar.update(bar_id, completed=written)
            check_complete(response)  # a CSV cut short is not kept as if it were whole
            target.flush()
            if temporary:
                target.close()
                os.replace(temporary[0], output)
        except BaseException:
            if temporary:
                target.close()
                temporary[0].unlink(missing_ok=True)
            raise
    if output:
        err.print(Text(f"wrote {written} bytes to {visible(output)}"))


def _new_beside(path: Path):
    """A new file in `path`'s folder (mode 0666 less the umask, as `>` would make it)."""
    for attempt in range(100):
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{attempt}.part")
        try:
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        with contextlib.suppress(OSError):  # an existing file keeps its mode
            os.fchmod(descriptor, stat.S_IMODE(path.stat().st_mode))
        return candidate, os.fdopen(descriptor, "wb")
    raise CliError(f"cannot make a temporary file beside {path}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tasks")
    root.command("logs")(logs)
    root.command("csv")(csv)
