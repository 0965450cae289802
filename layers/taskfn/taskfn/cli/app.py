"""The command tree: one module per concern registers its commands here."""

import signal
import sys
from collections.abc import Sequence

import typer

from taskfn.cli import functions, jobs, local, login, schedules, tasks
from taskfn.cli.output import INTERRUPTED

app = typer.Typer(
    name="taskfn", help="taskfn: run the platform locally, deploy functions, run tasks.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
for module in (local, login, functions, tasks, schedules, jobs):
    module.register(app)


def usage_line(error: typer.TyperException) -> str:
    """A usage error as one line, naming the help of the command it is about."""
    ctx = getattr(error, "ctx", None)
    where = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
    return f"taskfn: {' '.join(error.format_message().split())}{where}"


def run(argv: Sequence[str] | None = None) -> int:
    """The exit status of the command `argv` (the process's arguments by default). Usage
    errors are one line, as every other error (Typer would draw a box around them)."""
    # Ctrl-C stops a command even when started where SIGINT is ignored (a shell script's
    # background job): the commands stop cleanly on KeyboardInterrupt, exit status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=list(argv) if argv is not None else sys.argv[1:],
                            prog_name="taskfn", standalone_mode=False)
    except typer.TyperException as error:  # Click's errors: usage, a missing file
        if type(error).__name__ != "NoArgsIsHelpError":  # its help is already printed
            print(usage_line(error), file=sys.stderr, flush=True)
        return getattr(error, "exit_code", 1)
    except typer.Abort as abort:  # a prompt's Ctrl-C or end of input
        interrupted = isinstance(abort.__context__, KeyboardInterrupt)
        print(f"taskfn: {'interrupted' if interrupted else 'aborted'}", file=sys.stderr,
              flush=True)
        return INTERRUPTED if interrupted else 1
    except KeyboardInterrupt:  # outside the commands' own handling (while parsing)
        print("taskfn: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    return code if isinstance(code, int) else 0
