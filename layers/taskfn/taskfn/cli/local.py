"""`taskfn local` and `taskfn cell`: the processes that run the platform or a cell on this
machine (their flags, lines and variables are what scripts and tests rely on)."""

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

# Secrets come from the environment: a command line is readable by every process on the
# machine (/proc/<pid>/cmdline, ps), user code included.
ADMIN_TOKEN_VARIABLE = "TASKFN_ADMIN_TOKEN"
CELL_TOKEN_VARIABLE = "TASKFN_CELL_TOKEN"
DEFAULT_DATA = ".taskfn"
_VISIBLE = ("taskfn: warning: {option} on the command line is visible to every process on this "
            "machine, functions' code included; set {variable} instead")


def secret(given: str | None, option: str, variable: str) -> str | None:
    """A secret from its variable, or (with a warning) from the command line."""
    if given:
        print(_VISIBLE.format(option=option, variable=variable), file=sys.stderr, flush=True)
        return given
    return os.environ.get(variable) or None


def _stop_on_signals() -> tuple[threading.Event, dict]:
    """Ctrl-C and SIGTERM both ask for a clean stop (a service manager sends SIGTERM)."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    return stopping, previous


def data_dir(data: str | None, memory: bool) -> Path | None:
    """Where the stack keeps its data: DIR, else .taskfn/ here; None (in memory) with
    --memory, which says the opposite of --data (both at once is a usage error)."""
    if memory and data is not None:
        raise typer.BadParameter("give --data DIR or --memory, not both", param_hint="--memory")
    return None if memory else Path(data or DEFAULT_DATA)


def announce_admin_token(stack: object) -> None:
    """A new admin token is shown once; a kept one is only pointed at (it is the same one
    as before the restart, and a log is no place to repeat a secret)."""
    if getattr(stack, "admin_token_generated", False):
        print(f"admin token: {stack.admin_token}", flush=True)
    elif (kept := getattr(stack, "admin_token_kept", None)) is not None:
        print(f"taskfn local: the admin token is kept in {kept}", flush=True)


def local(
    host: Annotated[str, typer.Option(help="gateway address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gateway port; 0 picks one")] = 3000,
    admin_token: Annotated[str | None, typer.Option(
        help=f"admin token to create (default: ${ADMIN_TOKEN_VARIABLE}, else a random one); "
             "prefer the variable: a command line is visible to every process")] = None,
    data: Annotated[str | None, typer.Option(
        "--data", metavar="DIR",
        help=f"where the platform keeps its data across restarts ({DEFAULT_DATA})")] = None,
    memory: Annotated[bool, typer.Option(
        "--memory", help="keep nothing: all data is gone when it stops")] = False,
) -> None:
    """Run the whole platform on this machine (moto, no AWS) until Ctrl-C or SIGTERM."""
    from taskfn.local.stack import LocalStack

    stopping, previous = _stop_on_signals()
    token = secret(admin_token, "--admin-token", ADMIN_TOKEN_VARIABLE)
    stack = LocalStack(host=host, port=port, admin_token=token,
                       data_dir=data_dir(data, memory))
    try:
        try:
            stack.start()
        except (RuntimeError, OSError) as error:  # the data in use, the port taken
            print(f"taskfn local: cannot start: {' '.join(str(error).split())}",
                  file=sys.stderr, flush=True)
            raise typer.Exit(1) from None
        print(f"taskfn local: serving {stack.url}", flush=True)
        if stack.websocket is not None:
            print(f"taskfn local: live logs at {stack.websocket.url}", flush=True)
        announce_admin_token(stack)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _registered_token(api: str, user_token: str, node_id: str, description: str,
                      token_file: str | None) -> str | None:
    """--register: the cell token kept in --token-file, or a new node's (then kept there,
    mode 0600, so that the next start reuses it)."""
    from taskfn.cell import ApiUnreachable, CellApiError, register_node

    kept = Path(token_file or f".taskfn-node-{node_id}.token")
    if kept.exists():
        return kept.read_text().strip()
    try:
        token = register_node(api, user_token, node_id, description)
    except (ApiUnreachable, CellApiError) as error:
        print(f"taskfn cell: node {node_id} not registered: {error}", file=sys.stderr)
        return None
    try:  # a new file, 0600 from its first byte; never through a link planted there
        descriptor = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
    except OSError as error:
        print(f"taskfn cell: node {node_id} registered, but its cell token cannot be kept in "
              f"{kept}: {error.strerror}", file=sys.stderr, flush=True)
        return token
    print(f"taskfn cell: node {node_id} registered; its cell token is kept in {kept}",
          flush=True)
    return token


def cell(
    api: Annotated[str, typer.Option(help="the platform's URL")],
    node_id: Annotated[str, typer.Option(
        "--id", help="this cell's node hash (its cell id, unique among nodes)")],
    domain: Annotated[str, typer.Option(help="the task domain to list")],
    token: Annotated[str | None, typer.Option(
        help=f"the node's cell token (default: ${CELL_TOKEN_VARIABLE}); prefer the variable: "
             "a command line is visible to every process")] = None,
    register: Annotated[bool, typer.Option(
        "--register", help="register the node first (--token is then a user token), keeping "
                           "its cell token in --token-file for the next start")] = False,
    token_file: Annotated[str | None, typer.Option(
        help="where --register keeps the cell token (.taskfn-node-<id>.token)")] = None,
    description: Annotated[str, typer.Option(help="the node's description (--register)")] = "",
    tags: Annotated[str, typer.Option(help="placement tags this cell offers: a,b")] = "",
    poll: Annotated[float, typer.Option(help="seconds between polls")] = 1.0,
    heartbeat: Annotated[float, typer.Option(
        help="seconds between heartbeats of a running task")] = 5.0,
    timeout: Annotated[float, typer.Option(
        help="seconds a task may run before it fails")] = 600.0,
) -> None:
    """Run an external cell: take tagged tasks over HTTP until Ctrl-C or SIGTERM. A running
    task is abandoned (killed, not completed) and convergence fails it."""
    import logging

    from taskfn.cell import Cell, CellClient, parse_tags

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping, previous = _stop_on_signals()
    try:
        offered = parse_tags(tags)
        given = secret(token, "--token", CELL_TOKEN_VARIABLE)
        if not given:
            print(f"taskfn cell: set {CELL_TOKEN_VARIABLE} to the node's cell token (or a user "
                  "token with --register)", file=sys.stderr)
            raise typer.Exit(2)
        if register:
            given = _registered_token(api, given, node_id, description, token_file)
            if given is None:
                raise typer.Exit(1)
        runner = Cell(CellClient(api, given), node_id, offered, domain,
                      poll_s=poll, heartbeat_s=heartbeat, timeout_s=timeout)
        print(f"taskfn cell {node_id}: domain {domain}, tags {sorted(offered)}, "
              f"polling {api}", flush=True)
        runner.run_forever(stopping)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def register(app: typer.Typer) -> None:
    app.command("local")(local)
    app.command("cell")(cell)
