"""What the commands print, and how they fail: tables and progress on Rich consoles, JSON for
scripts, and every error as one plain line on stderr (never a traceback, Ctrl-C included)."""

import contextlib
import functools
import http.client
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from taskfn.cli import config
from taskfn.cli.client import Api, ApiError
from taskfn.cli.config import NotLoggedIn, settings

# Piped, a table is read by people with wide terminals or by grep: no folding at 80 columns.
# No emoji codes: `:warning:` in a function's description is text, not a picture.
out = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
USAGE = 2  # as Click's own usage errors
DEBUG_VARIABLE = "TASKFN_DEBUG"  # set: an unexpected error shows its traceback

# What must never reach a terminal raw from a field of the API (names, descriptions, a
# task's failure reason, an error's message): C0 and C1 controls and DEL (ESC starts cursor
# moves, OSC 8 links and OSC 52 clipboard writes; CR and BS overwrite what is shown), the
# bidirectional overrides and isolates (which reorder what is shown), line and paragraph
# separators, and lone surrogates (which no encoder writes).
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                     r"\ud800-\udfff]")



_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> str:
    """A value as text that shows what it holds: every control character as an escape
    (`\\x1b`, `\\n`, `\\u202e`), nothing a terminal would act on."""
    return _HIDDEN.sub(_shown, "" if value is None else str(value))


def shown(value: Any) -> str:
    """A value to put in a Rich markup string: visible, and its `[` not read as markup."""
    return escape(visible(value))


class CliError(Exception):
    """A failure the user can act on; its text is the whole message."""

    exit_code = 1


class UsageError(CliError):
    """An option given wrong (exit status 2, as Click's own usage errors)."""

    exit_code = USAGE


def fail(message: str) -> None:
    """One line on stderr: plain print, since Rich would wrap a long one at 80 columns. The
    message may hold the API's words: shown, never acted on, and no secret in it."""
    text = " ".join(str(message).split())
    for secret in config.SECRETS:
        if len(secret) >= 8:  # a real token; a short test value would blot out letters
            text = text.replace(secret, "***")
    print(f"taskfn: {visible(text)}", file=sys.stderr, flush=True)


def handled[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    """Every command's errors as one line and an exit status: 1 for an error, 2 for an
    option given wrong (UsageError), 130 for Ctrl-C (whatever Typer's version does with
    KeyboardInterrupt); never a traceback (TASKFN_DEBUG=1 shows one of an unexpected error)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # Typer's own, to app.run
            raise
        except (ApiError, CliError, NotLoggedIn) as error:
            fail(str(error))
            raise typer.Exit(getattr(error, "exit_code", 1)) from None
        except KeyboardInterrupt:
            fail("interrupted")
            raise typer.Exit(INTERRUPTED) from None
        except BrokenPipeError:  # `taskfn … | head`: the reader left, nothing to say
            _quiet_stdout()
            raise typer.Exit(1) from None
        except OSError as error:  # a file to read or write, the network in mid-answer
            where = f": {error.filename}" if error.filename else ""
            fail(f"{error.strerror or type(error).__name__}{where}")
            raise typer.Exit(1) from None
        except Exception as error:  # a bug, or an answer of a shape nobody expected
            if os.environ.get(DEBUG_VARIABLE):
                raise
            kind = ("unexpected answer" if isinstance(error, LookupError | TypeError |
                                                      ValueError | http.client.HTTPException)
                    else "internal error")
            fail(f"{kind}: {type(error).__name__}: {error} (set {DEBUG_VARIABLE}=1 for "
                 "the traceback)")
            raise typer.Exit(1) from None

    return run


def _quiet_stdout() -> None:
    """The reader of stdout left: what is still buffered must not fail again at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def api() -> Api:
    return Api(settings())


# json.dumps escapes C0 controls but leaves DEL, C1 and the bidi controls raw: escaped too
# (they occur only inside strings, where \\uXXXX means the same character).
_JSON_RAW = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    print(_JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text), flush=True)


def line(value: Any) -> None:
    """One value (an id) on stdout, for scripts: shown as `visible` makes it."""
    print(visible(value), flush=True)


_LONE = re.compile(r"[\ud800-\udc7f\udd00-\udfff]")


def write_raw(stream: Any, text: str) -> None:
    """Text the user's code wrote (a task's stdout), as `cat` would show it: its bytes as
    they are, never read as markup; characters no encoder writes become U+FFFD."""
    # \\udc80-\\udcff are bytes that were not UTF-8 (surrogateescape): written as those
    # bytes; any other lone surrogate (JSON can say "\\ud800") cannot be, so U+FFFD.
    data = _LONE.sub("\ufffd", text).encode("utf-8", "surrogateescape")
    stream = getattr(stream, "buffer", stream)
    stream.write(data)
    stream.flush()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          empty: str = "nothing yet") -> None:
    """A Rich table on stdout; ids and times never wrap (a cut id cannot be pasted)."""
    rows = list(rows)
    if not rows:
        err.print(Text(visible(empty), style="dim"))
        return
    grid = Table(title=Text(visible(title)) if title else None, header_style="bold",
                 show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, no_wrap=column in ("ID", "Job", "Execution", "Issued",
                                                   "Created", "Group", "Status", "Cron",
                                                   "Function"),
                        overflow="fold")
    for row in rows:
        grid.add_row(*(Text(visible(cell)) for cell in row))  # a str would be markup
    out.print(grid)


def when(unix_seconds: str | int | None) -> str:
    """GreenCloud's unix-second strings ("0" until it happens) as local time."""
    try:
        seconds = int(unix_seconds or 0)
    except (TypeError, ValueError):
        return str(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def payload(data: str | None) -> tuple[bytes | None, str | None]:
    """--data as the body and its content type: JSON text, or @file (sent as is, JSON when
    it parses as JSON)."""
    if data is None:
        return None, None
    if data.startswith("@"):
        try:
            raw = Path(data[1:]).expanduser().read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {data[1:]}: {error.strerror}") from None
    else:
        raw = data.encode("utf-8", "surrogateescape")
    try:
        json.loads(raw)
    except ValueError:
        if not data.startswith("@"):
            raise UsageError("--data is not JSON (use @file to send a file as it is)") from None
        try:
            raw.decode()
        except UnicodeDecodeError:
            return raw, "application/octet-stream"
        return raw, "text/plain"
    return raw, "application/json"


def pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    """Repeated k=v options, in order."""
    found = []
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise UsageError(f"{option} takes name=value, got {value!r}")
        found.append((name, rest))
    return found


def percent_bar() -> Progress:
    """A bar of a task's own progress (0-100), on stderr so stdout stays the result."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                    TaskProgressColumn(), TimeElapsedColumn(), console=err)


def download_bar() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), console=err)
