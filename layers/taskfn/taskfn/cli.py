"""The ``taskfn`` command: a small dispatcher, one function per subcommand."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

# Secrets come from the environment: a command line is readable by every process on the
# machine (/proc/<pid>/cmdline, ps), user code included.
ADMIN_TOKEN_VARIABLE = "TASKFN_ADMIN_TOKEN"
CELL_TOKEN_VARIABLE = "TASKFN_CELL_TOKEN"
_VISIBLE = ("taskfn: warning: {option} on the command line is visible to every process on this "
            "machine, functions' code included; set {variable} instead")


def _local(args: argparse.Namespace) -> int:
    """Run the whole platform on this machine until Ctrl-C or SIGTERM."""
    from taskfn.local.stack import LocalStack

    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    admin_token = _secret(args.admin_token, "--admin-token", ADMIN_TOKEN_VARIABLE)
    stack = LocalStack(host=args.host, port=args.port, admin_token=admin_token)
    try:
        stack.start()
        print(f"taskfn local: serving {stack.url}", flush=True)
        if stack.websocket is not None:
            print(f"taskfn local: live logs at {stack.websocket.url}", flush=True)
        if stack.admin_token_generated:
            print(f"admin token: {stack.admin_token}", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _registered_token(args: argparse.Namespace, user_token: str) -> str | None:
    """--register: the cell token kept in --token-file, or a new node's (then kept there,
    mode 0600, so that the next start reuses it)."""
    from pathlib import Path

    from taskfn.cell import ApiUnreachable, CellApiError, register_node

    kept = Path(args.token_file or f".taskfn-node-{args.id}.token")
    if kept.exists():
        return kept.read_text().strip()
    try:
        token = register_node(args.api, user_token, args.id, args.description)
    except (ApiUnreachable, CellApiError) as error:
        print(f"taskfn cell: node {args.id} not registered: {error}", file=sys.stderr)
        return None
    kept.touch(mode=0o600)
    kept.write_text(token + "\n")
    print(f"taskfn cell: node {args.id} registered; its cell token is kept in {kept}",
          flush=True)
    return token


def _cell(args: argparse.Namespace) -> int:
    """Run an external cell until Ctrl-C or SIGTERM; a running task is abandoned (killed, not
    completed) and convergence fails it, as for a cell that died."""
    import logging

    from taskfn.cell import Cell, CellClient, parse_tags

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    tags = parse_tags(args.tags)
    token = _secret(args.token, "--token", CELL_TOKEN_VARIABLE)
    if not token:
        print(f"taskfn cell: set {CELL_TOKEN_VARIABLE} to the node's cell token (or a user "
              "token with --register)", file=sys.stderr)
        return 2
    if args.register:
        token = _registered_token(args, token)
        if token is None:
            return 1
    cell = Cell(CellClient(args.api, token), args.id, tags, args.domain,
                poll_s=args.poll, heartbeat_s=args.heartbeat, timeout_s=args.timeout)
    try:
        print(f"taskfn cell {args.id}: domain {args.domain}, tags {sorted(tags)}, "
              f"polling {args.api}", flush=True)
        cell.run_forever(stopping)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _secret(given: str | None, option: str, variable: str) -> str | None:
    """A secret from its variable, or (with a warning) from the command line."""
    if given:
        print(_VISIBLE.format(option=option, variable=variable), file=sys.stderr, flush=True)
        return given
    return os.environ.get(variable) or None


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand; each sets ``func``."""
    parser = argparse.ArgumentParser(prog="taskfn", description="taskfn platform tools")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="run the whole platform locally (moto, no AWS)")
    local.add_argument("--host", default="127.0.0.1", help="gateway address (127.0.0.1)")
    local.add_argument("--port", type=int, default=3000, help="gateway port; 0 picks one")
    local.add_argument(
        "--admin-token", default=None,
        help=f"admin token to create (default: ${ADMIN_TOKEN_VARIABLE}, else a random one); "
             "prefer the variable: a command line is visible to every process",
    )
    local.set_defaults(func=_local)

    cell = commands.add_parser("cell", help="run an external cell: take tagged tasks over HTTP")
    cell.add_argument("--api", required=True, help="the platform's URL")
    cell.add_argument("--token", default=None,
                      help=f"the node's cell token (default: ${CELL_TOKEN_VARIABLE}); prefer "
                           "the variable: a command line is visible to every process")
    cell.add_argument("--id", required=True,
                      help="this cell's node hash (its cell id, unique among nodes)")
    cell.add_argument("--register", action="store_true",
                      help="register the node first (--token is then a user token), keeping "
                           "its cell token in --token-file for the next start")
    cell.add_argument("--token-file", default=None,
                      help="where --register keeps the cell token (.taskfn-node-<id>.token)")
    cell.add_argument("--description", default="", help="the node's description (--register)")
    cell.add_argument("--domain", required=True, help="the task domain to list")
    cell.add_argument("--tags", default="", help="placement tags this cell offers: a,b")
    cell.add_argument("--poll", type=float, default=1.0, help="seconds between polls (1.0)")
    cell.add_argument("--heartbeat", type=float, default=5.0,
                      help="seconds between heartbeats of a running task (5)")
    cell.add_argument("--timeout", type=float, default=600.0,
                      help="seconds a task may run before it fails (600)")
    cell.set_defaults(func=_cell)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskfn`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
