"""`taskfn jobs …`: fastlane's jobs API (groups of jobs, each run as executions). Its errors
are {error, operation} or plain text; the client reads both."""

import json
import sys
import time
from typing import Annotated

import typer
from rich.text import Text

from taskfn.cli.client import Api, quote
from taskfn.cli.functions import JSON_OPTION, POLL_S
from taskfn.cli.output import (
    UsageError,
    api,
    err,
    handled,
    line,
    out,
    pairs,
    print_json,
    table,
    visible,
)

app = typer.Typer(help="fastlane jobs: commands in images, retried, scheduled.",
                  no_args_is_help=True)
ENDED = {"done", "failed", "timedout", "expired"}
GROUP = Annotated[str, typer.Argument(help="the task group (fastlane's task id)")]
JOB = Annotated[str, typer.Argument(help="the job's id (a UUID)")]
EXECUTION = Annotated[str | None, typer.Option(
    "--execution", "-e", help="that execution (default: the last)")]


def job_path(group: str, job: str) -> str:
    return f"/tasks/{quote(group)}/jobs/{quote(job)}"


@app.command("enqueue")
@handled
def enqueue(
    group: GROUP,
    image: Annotated[str, typer.Option(help="the image (recorded; locally not pulled)")],
    command: Annotated[str, typer.Option(help="the command, split as a shell would")],
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="an environment variable NAME=value (repeatable)")] = None,
    retries: Annotated[int | None, typer.Option(help="retries of a non-zero exit (≤ 8)")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds (≤ 1800)")] = None,
    start_in: Annotated[str | None, typer.Option(help="later: 2h30m, 5m, 10s")] = None,
    start_at: Annotated[float | None, typer.Option(help="later: at this unix time")] = None,
    cron: Annotated[str | None, typer.Option(help="repeatedly: 5-field cron, UTC")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object kept with the job")] = None,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Create a job in a group (created if missing) and run it; prints the job's id."""
    body: dict = {"image": image, "command": command}
    if env:
        body["envs"] = dict(pairs(env, "--env"))
    for name, value in (("retries", retries), ("timeout", timeout), ("startIn", start_in),
                        ("startAt", start_at), ("cron", cron)):
        if value is not None:
            body[name] = value
    if metadata is not None:
        try:
            body["metadata"] = json.loads(metadata)
        except ValueError:
            raise UsageError("--metadata is not JSON") from None
    answer = api().request("POST", f"/tasks/{quote(group)}", body=body).json()
    if as_json:
        print_json(answer)
        return
    line(answer["jobId"])
    later = f"scheduled as {answer['queueJobId']}" if answer["executionId"] is None else (
        f"execution {answer['executionId']}")
    err.print(Text(visible(f"job {answer['jobId']} in {group}: {later}"), style="dim"))


@app.command("ls")
@handled
def ls(
    group: Annotated[str | None, typer.Argument(
        help="a group's jobs (default: the groups)")] = None,
    page: Annotated[int, typer.Option(help="the page of groups (10 a page)")] = 1,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Your task groups, or one group's jobs."""
    client = api()
    if group is None:
        answer = client.get("/tasks", query={"page": str(page)})
        if as_json:
            print_json(answer)
            return
        table(("Group", "Jobs", "Created", "Modified"),
              ((g["taskId"], g["jobsCount"], g.get("createdAt"), g.get("lastModifiedAt"))
               for g in answer["items"]), empty="no jobs yet: `taskfn jobs enqueue`",
              title=f"page {answer['page']} of {answer['pages']}" if answer["pages"] > 1
              else None)
        return
    answer = client.get(f"/tasks/{quote(group)}")
    if as_json:
        print_json(answer)
        return
    table(("Job", "Created"), ((j["id"], j.get("createdAt")) for j in answer["jobs"]),
          empty=f"no jobs in {group}")


@app.command("show")
@handled
def show(group: GROUP, job: JOB, as_json: Annotated[bool, JSON_OPTION] = False) -> None:
    """A job and its newest executions."""
    answer = api().get(job_path(group, job))
    if as_json:
        print_json(answer)
        return
    details = answer["job"]
    err.print(Text(visible(f"job {details['id']} in {details['taskId']}: {details['image']} "
                           f"`{details['command']}`, {details['executionCount']} execution(s)"
                           + (", scheduled" if details.get("scheduled") else ""))))
    table(("Execution", "Status", "Exit", "Created", "Finished"),
          ((e["executionId"], e["status"], e.get("exitCode"), e.get("createdAt"),
            e.get("finishedAt")) for e in details["executions"]), empty="no executions yet")


def wait_ended(client: Api, group: str, job: str, execution: str | None) -> None:
    """Until the execution (or the job's last) has ended: its output is empty before."""
    with err.status("waiting for the execution to end…"):
        while True:
            if execution:
                status = client.get(f"{job_path(group, job)}/executions/{quote(execution)}")
                status = (status.get("execution") or status).get("status")
            else:
                runs = client.get(job_path(group, job))["job"]["executions"]
                status = runs[0]["status"] if runs else None
            if status in ENDED:
                return
            time.sleep(POLL_S)


def _output(stream: str, group: str, job: str, execution: str | None, wait: bool) -> None:
    client = api()
    if wait:
        wait_ended(client, group, job, execution)
    path = job_path(group, job) + (f"/executions/{quote(execution)}" if execution else "")
    answer = client.request("GET", f"{path}/{stream}")
    sys.stdout.buffer.write(answer.body)
    if out.is_terminal and answer.body and not answer.body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")  # the prompt on a line of its own; a pipe gets it as is
    sys.stdout.buffer.flush()
    code = answer.headers.get("Fastlane-Exit-Code")
    if code not in (None, "", "0"):
        err.print(Text(f"exit code {visible(code)}", style="dim"))


WAIT = Annotated[bool, typer.Option("--wait", "-w", help="wait for the execution to end")]


@app.command("stdout")
@handled
def stdout(group: GROUP, job: JOB, execution: EXECUTION = None, wait: WAIT = False) -> None:
    """The stdout of the job's last execution (or of one); empty until it has ended."""
    _output("stdout", group, job, execution, wait)


@app.command("stderr")
@handled
def stderr(group: GROUP, job: JOB, execution: EXECUTION = None, wait: WAIT = False) -> None:
    """The stderr of the job's last execution (or of one)."""
    _output("stderr", group, job, execution, wait)


@app.command("stop")
@handled
def stop(group: GROUP, job: JOB, execution: EXECUTION = None) -> None:
    """Stop the job's unfinished executions and its schedule (or only one execution)."""
    path = job_path(group, job) + (f"/executions/{quote(execution)}" if execution else "")
    api().request("POST", f"{path}/stop")
    err.print(Text(visible(f"stopped {'execution ' + execution if execution else 'job ' + job}")))


@app.command("retry")
@handled
def retry(group: GROUP, job: JOB) -> None:
    """Run the job again from its last execution's image and command."""
    answer = api().request("POST", f"{job_path(group, job)}/retry").json()
    line(answer["jobId"])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="jobs")
