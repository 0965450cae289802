"""Where a fastlane job's execution runs: image + command in a container (docs/design/
jobs-api.md §3). One port, two back-ends: ECS Fargate in AWS (runtime/ecs.py) and a sandboxed
child process in the local stack (local/containers.py). Both report the run's end the same
way, as ECS does: an "ECS Task State Change" event on EventBridge, which a rule gives to
ContainerEventsFunction; its output is in CloudWatch Logs, one event per line. So the
completion code is one code.

In AWS the output reaches the logs through ECS's awslogs driver, which writes with the task's
execution role: the job's container holds no credentials at all. (FireLens would tell stdout
from stderr, but its log router writes with the task role, which the job's own code could
then use to write into any job's stream.) awslogs does not tell the two streams apart, so in
AWS a job's stderr is read back as part of its stdout; the local back-end writes each line as
{"source": "stdout" | "stderr", "log": line}, which the same reader splits.

Nothing waits for a run here: `launch` returns once the run is started (a job may run for 30
minutes; a Lambda does not wait for it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

EVENT_SOURCE = "aws.ecs"
EVENT_DETAIL_TYPE = "ECS Task State Change"
CONTAINER_NAME = "job"  # the job's container in the task definition (the other: log_router)
# The ECS task's `group`: which execution it runs (its startedBy is the task guid).
GROUP_PREFIX = "taskfn:"
# The awslogs driver names each task's stream <awslogs-stream-prefix>/<container>/<task id>.
LOG_STREAM_PREFIX = "job"
OUTPUT_MAX_BYTES = 16 * 1024 * 1024  # of each stream, read back; the rest is counted dropped


@dataclass(frozen=True)
class Launch:
    """One execution to start: the task record's guid, the attempt's execution id (the
    launch's idempotency token), the image, the command as shell words, and its envs."""

    task_guid: str
    execution_id: str
    image: str
    argv: tuple[str, ...]
    envs: dict[str, str] = field(default_factory=dict)
    timeout_s: int = 1800


class LaunchRefused(Exception):
    """The back-end did not start the run (no capacity, throttled, a bad image name): the
    task goes back to Pending and is tried again later (lifecycle.reject)."""


class ContainerRuntime(Protocol):
    name: str  # "ecs-fargate" or "local-process": what /status shows as the executor

    def launch(self, launch: Launch) -> str:
        """Start the run; its reference (an ECS task ARN). Raises LaunchRefused."""

    def stop(self, ref: str, reason: str) -> None:
        """Ask the run to stop (SIGTERM, then SIGKILL after 30 s); its STOPPED event follows.
        A run already stopped or unknown is no error."""


@dataclass(frozen=True)
class ContainerEvent:
    """What taskfn reads of an ECS Task State Change event."""

    task_arn: str
    task_guid: str  # startedBy
    execution_id: str  # from the group
    last_status: str  # PROVISIONING … RUNNING … STOPPED
    exit_code: int | None = None
    stop_code: str = ""  # EssentialContainerExited, UserInitiated, TaskFailedToStart, …
    stopped_reason: str = ""

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"


def parse_event(event: dict[str, Any]) -> ContainerEvent | None:
    """The event, or None when it is not one of taskfn's runs (another task on the cluster, a
    malformed event): those are dropped, never retried."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return None
    group, started_by = detail.get("group"), detail.get("startedBy")
    arn, status = detail.get("taskArn"), detail.get("lastStatus")
    if not (isinstance(group, str) and group.startswith(GROUP_PREFIX) and isinstance(
            started_by, str) and started_by and isinstance(arn, str) and isinstance(status, str)):
        return None
    exit_code = None
    for container in detail.get("containers") or []:
        if isinstance(container, dict) and container.get("name") == CONTAINER_NAME:
            code = container.get("exitCode")
            exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return ContainerEvent(task_arn=arn, task_guid=started_by,
                          execution_id=group[len(GROUP_PREFIX):], last_status=status,
                          exit_code=exit_code, stop_code=str(detail.get("stopCode") or ""),
                          stopped_reason=str(detail.get("stoppedReason") or ""))


def state_change(*, cluster_arn: str, task_arn: str, launch: Launch, last_status: str,
                 region: str, account: str, time: str, exit_code: int | None = None,
                 stop_code: str = "", stopped_reason: str = "") -> dict[str, Any]:
    """An ECS Task State Change event as EventBridge delivers it (the parts taskfn reads,
    and the envelope): what the local back-end emits."""
    detail: dict[str, Any] = {
        "clusterArn": cluster_arn, "taskArn": task_arn, "startedBy": launch.task_guid,
        "group": GROUP_PREFIX + launch.execution_id, "lastStatus": last_status,
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "launchType": "FARGATE",
        "containers": [{"name": CONTAINER_NAME, "image": launch.image,
                        "lastStatus": last_status,
                        **({"exitCode": exit_code} if exit_code is not None else {})}],
    }
    if last_status == "STOPPED":
        detail |= {"stopCode": stop_code, "stoppedReason": stopped_reason, "stoppedAt": time}
    return {"version": "0", "id": launch.execution_id, "detail-type": EVENT_DETAIL_TYPE,
            "source": EVENT_SOURCE, "account": account, "time": time, "region": region,
            "resources": [task_arn], "detail": detail}


def task_id_of(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def log_stream(task_arn: str) -> str:
    """The CloudWatch Logs stream of a run's output (the awslogs driver's name for it)."""
    return f"{LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{task_id_of(task_arn)}"


@dataclass
class Outputs:
    stdout: str = ""
    stderr: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0


READ_MAX_FACTOR = 2  # read_outputs reads at most this many times its limit…
READ_PAGES_MAX = 100  # …and this many pages (up to 10,000 events each: tiny lines)


def read_outputs(logs: Any, group: str, stream: str,
                 limit: int = OUTPUT_MAX_BYTES) -> Outputs:
    """A run's stdout and stderr from its stream, in order, each line as printed; past
    `limit` bytes of a stream the rest is counted, not kept, and reading stops once twice
    `limit` has been read or READ_PAGES_MAX pages (a job that prints gigabytes, or millions
    of empty lines, must not hold its completion past its Lambda's timeout): the counts are
    then at least what was dropped. No stream: no
    output."""
    kept: dict[str, list[str]] = {"stdout": [], "stderr": []}
    sizes = {"stdout": 0, "stderr": 0}
    dropped = {"stdout": 0, "stderr": 0}
    token: str | None = None
    pages = 0
    while True:
        try:
            page = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                       startFromHead=True, **({"nextToken": token} if token
                                                              else {}))
        except logs.exceptions.ResourceNotFoundException:
            break
        for event in page.get("events") or []:
            source, line = _record(event.get("message", ""))
            size = len(line.encode()) + 1
            if sizes[source] + size > limit:
                dropped[source] += size
                continue
            sizes[source] += size
            kept[source].append(line)
        following = page.get("nextForwardToken")
        if not following or following == token or not page.get("events"):
            break
        pages += 1
        if sum(sizes.values()) + sum(dropped.values()) >= READ_MAX_FACTOR * limit or \
                pages >= READ_PAGES_MAX:
            break
        token = following
    return Outputs("\n".join(kept["stdout"]), "\n".join(kept["stderr"]),
                   dropped["stdout"], dropped["stderr"])


def _record(message: str) -> tuple[str, str]:
    """A local record's stream and line; any other line (awslogs') is the job's stdout."""
    try:
        record = json.loads(message)
    except ValueError:
        return "stdout", message
    if not isinstance(record, dict) or not isinstance(record.get("log"), str):
        return "stdout", message
    return ("stderr" if record.get("source") == "stderr" else "stdout"), record["log"]


def source_record(source: str, line: str) -> str:
    return json.dumps({"source": source, "log": line})


# The back-end of this process: the local stack installs its own (local/containers.py).
_installed: ContainerRuntime | None = None


def install(runtime: ContainerRuntime | None) -> None:
    global _installed
    _installed = runtime


def installed() -> ContainerRuntime | None:
    return _installed
