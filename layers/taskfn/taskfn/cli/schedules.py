"""`taskfn schedule …`: cron schedules of functions, over the platform's /v1/scheduled API."""

import json
from typing import Annotated

import typer
from rich.text import Text

from taskfn.cli.client import ApiError, quote
from taskfn.cli.functions import JSON_OPTION, function_id
from taskfn.cli.output import (
    api,
    err,
    handled,
    line,
    pairs,
    payload,
    print_json,
    table,
    visible,
)

app = typer.Typer(help="Run functions on a cron schedule.", no_args_is_help=True)
PAGE = 100


@app.command("ls")
@handled
def ls(
    function: Annotated[str | None, typer.Option(
        "--function", "-f", help="only this function's (name or id)")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Your schedules, newest first."""
    client = api()
    query = {"limit": str(PAGE)}
    if function:
        query["functionId"] = function_id(client, function)
    found: list[dict] = []
    page = 1
    while True:  # numbered pages; page × limit stays ≤ 10,000
        answer = client.get("/v1/scheduled/list", query={**query, "page": str(page)})
        found.extend(answer["results"])
        if page >= answer["pageCount"] or page * PAGE >= 10_000:
            break
        page += 1
    if as_json:
        print_json(found)
        return
    table(("ID", "Function", "Cron", "Timezone", "Active", "Description"),
          ((s["id"], s["functionId"], s["cron"], s["timezone"], "yes" if s["active"] else "no",
            s.get("description")) for s in found), empty="no schedules")


@app.command("create")
@handled
def create(
    function: Annotated[str, typer.Argument(help="the function's name or id")],
    cron: Annotated[str, typer.Option(help="5-field Unix cron, e.g. '*/5 * * * *'")],
    timezone: Annotated[str, typer.Option(help="an IANA zone")] = "UTC",
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="each run's body: JSON, or @file")] = None,
    query: Annotated[list[str] | None, typer.Option(
        "--query", "-q", help="each run's query parameter name=value (repeatable)")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="create it inactive")] = False,
) -> None:
    """Create a schedule; prints its id."""
    body, content_type = payload(data)  # every usage error before any request
    params = pairs(query, "--query")
    client = api()
    fid = function_id(client, function)
    sid = client.request("POST", "/v1/scheduled", body={
        "functionId": fid, "cron": cron, "timezone": timezone, "description": description,
    }).json()["id"]
    try:
        if body is not None or params:  # no body: none sent (not an empty form)
            client.request("PUT", f"/v1/scheduled/{quote(sid)}/payload", query=params, body=body,
                           content_type=content_type)
        if paused:
            client.request("PATCH", f"/v1/scheduled/{quote(sid)}", body={"active": False})
    except BaseException:
        # Half made (no payload, or active when asked to be paused): not left to run so.
        try:
            client.request("DELETE", f"/v1/scheduled/{quote(sid)}")
        except ApiError:
            err.print(Text(f"schedule {visible(sid)} was made but is not as asked: "
                           f"`taskfn schedule rm {visible(sid)}`"))
        raise
    line(sid)


@app.command("show")
@handled
def show(
    schedule: Annotated[str, typer.Argument(help="the schedule's id")],
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """One schedule and the input of its runs."""
    found = api().get(f"/v1/scheduled/{quote(schedule)}")
    if as_json:
        print_json(found)
        return
    inline = found.get("inlinePayload") or {}
    table(("Field", "Value"), [
        ("ID", schedule), ("Function", found["functionId"]), ("Cron", found["cron"]),
        ("Timezone", found["timezone"]), ("Active", "yes" if found["active"] else "no"),
        ("Description", found.get("description")), ("Query", json.dumps(inline.get("query") or {})),
        ("Content type", inline.get("contentType")),
    ])


def _active(schedule: str, active: bool) -> None:
    api().request("PATCH", f"/v1/scheduled/{quote(schedule)}", body={"active": active})
    err.print(Text(f"schedule {visible(schedule)} {'resumed' if active else 'paused'}"))


@app.command("pause")
@handled
def pause(schedule: Annotated[str, typer.Argument(help="the schedule's id")]) -> None:
    """Stop its runs (it stays listed)."""
    _active(schedule, False)


@app.command("resume")
@handled
def resume(schedule: Annotated[str, typer.Argument(help="the schedule's id")]) -> None:
    """Run it again on its cron."""
    _active(schedule, True)


@app.command("try")
@handled
def try_(schedule: Annotated[str, typer.Argument(help="the schedule's id")]) -> None:
    """Run it now, with its payload; prints the task's id."""
    line(api().request("POST", f"/v1/scheduled/{quote(schedule)}/try").json()["id"])


@app.command("rm")
@handled
def rm(schedule: Annotated[str, typer.Argument(help="the schedule's id")]) -> None:
    """Delete a schedule."""
    api().request("DELETE", f"/v1/scheduled/{quote(schedule)}")
    err.print(Text(f"schedule {visible(schedule)} deleted"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schedule")
