"""`taskfn login`: check a token against the platform once, then keep URL and token in the
config file, so that later commands need neither."""

import sys
import urllib.parse
from typing import Annotated

import typer
from rich.text import Text

from taskfn.cli import config
from taskfn.cli.client import Api
from taskfn.cli.output import UsageError, err, handled, visible


@handled
def login(
    api: Annotated[str, typer.Option("--api", help="the platform's URL")],
    token: Annotated[str | None, typer.Option(
        "--token", help="your token (asked for when left out: a command line is visible to "
                        "every process; `-` reads it from stdin)")] = None,
) -> None:
    """Keep the platform's URL and your token (mode 0600, in ~/.config/taskfn/config.json or
    $TASKFN_CONFIG). TASKFN_API and TASKFN_TOKEN override them."""
    if not api.strip().startswith(("http://", "https://")):  # before asking for a token
        raise UsageError(f"--api must be an http(s) URL, got {api!r}")
    if token == "-":
        token = sys.stdin.readline().strip()
    elif token is None:
        token = typer.prompt("token", hide_input=True).strip()
    else:
        print("taskfn: warning: --token on the command line is visible to every process on "
              "this machine; leave it out to be asked for it, or pass - to read it from stdin",
              file=sys.stderr, flush=True)
    if not token:
        raise UsageError("no token given")
    settings = config.check(api, token)
    host = urllib.parse.urlsplit(settings.api).hostname or ""
    if settings.api.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        print(f"taskfn: warning: {visible(settings.api)} is plain http: the token crosses the "
              "network unencrypted; use https:// unless the platform is on this machine",
              file=sys.stderr, flush=True)
    Api(settings).request("GET", "/v1/function/list", query={"limit": "1"})  # 401 if unknown
    path = config.save(settings.api, settings.token)
    err.print(Text(f"logged in to {visible(settings.api)}; settings kept in {visible(path)}"))


def register(app: typer.Typer) -> None:
    app.command("login")(login)
