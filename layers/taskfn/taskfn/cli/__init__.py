"""The ``taskfn`` command (Typer and Rich): the platform's processes (`local`, `cell`) and a
client of its public HTTP APIs. ``main`` is the console script's entry point."""

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The commands are imported here, not at the package's import, so that a Ctrl-C that
    comes while they load is still exit status 130 without a traceback."""
    import signal

    # First of all: a process may inherit SIGINT ignored (started by a service, a test
    # runner, a shell script's background job); a Ctrl-C while the commands load must still
    # stop it (exit status 130), not be lost.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from taskfn.cli.app import run
    except KeyboardInterrupt:
        import sys

        print("taskfn: interrupted", file=sys.stderr, flush=True)
        return 130
    return run(argv)


__all__ = ["main"]
