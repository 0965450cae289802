"""Records of the domain. Pure data: no AWS, no I/O.

Times are integers of nanoseconds since the epoch (as BBS keeps them); adapters render them in
each API's own format.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskfn.callers import Caller as Caller  # re-exported: where it was
from taskfn.callers import Scope as Scope
from taskfn.lifecycle import SECOND_NS, State

# The built-in executor's cell ids start with this; external cells choose their own. Every
# cell heartbeats while a task runs, so convergence fails any silent Running task alike.
BUILT_IN_CELL_PREFIX = "executor-"
# A fastlane job's launch runs on a cell of its own, "container:<execution id>"
# (services/containers.py); its container never heartbeats.
CONTAINER_CELL = "container:"


def now_ns() -> int:
    return time.time_ns()


DAY_S = 86_400


def expiry(created_ns: int, retention_days: int) -> int:
    """When a task created at `created_ns` expires, in epoch seconds (the table's TTL unit):
    the same number of days after which S3 expires its outputs (template TaskRetentionDays)."""
    return created_ns // SECOND_NS + retention_days * DAY_S


class Record(BaseModel):
    """Records ignore store-only attributes (keys, index keys) when read back.

    Every model here and in the adapters defers building its validator to its first use
    (`defer_build`): a handler imports all of them and uses one or two, and building the
    others was about 25 ms of every cold start."""

    model_config = ConfigDict(defer_build=True, extra="ignore")


class Capabilities(BaseModel):
    """GreenCloud's capabilities; bounds from reference/greencloud.md."""

    model_config = ConfigDict(defer_build=True)

    timeout: int = Field(10, ge=10, le=120)
    cpuCount: int = Field(0, ge=0, le=4)
    memSize: int = Field(0, ge=0, le=2048)
    networkLatency: int = 0
    privileged: bool = False


class TokenRecord(Record):
    id: str
    user: str
    scope: Scope
    created_at: int
    # A cell token is bound to one node (stores/nodes.py): the only cell id it may act as.
    node: str = ""
    shared: bool = False


class NodeRecord(Record):
    """A registered machine that runs Cell API tasks: GreenCloud's node, BBS's cell. Its hash
    is its cell id. A user's node runs only its owner's tasks; an admin's (shared) any owner's.
    Its heartbeat says it is up and how many tasks it runs (available, busy)."""

    hash: str
    owner: str
    description: str = ""
    shared: bool = False
    privileged: bool = False
    disabled: bool = False
    disabled_at: int = 0
    token_id: str = ""
    created_at: int
    heartbeat_at: int = 0
    running: int = 0


class FunctionRecord(Record):
    id: str
    owner: str
    name: str
    description: str = ""
    lang: str = "py"
    type: str = "code"
    tags: list[str] = []
    capabilities: Capabilities = Capabilities()
    created_at: int
    build_id: str = ""
    code_key: str = ""
    # The version of the function's own Lambda that runs build_id (isolation "lambda").
    lambda_version: str = ""
    paused: bool = False
    # An HTTP function (lang "http", taskfn's extension): the URL the executor POSTs each
    # task's event to; its answer is the task's result. Empty for code functions.
    url: str = ""

    def run_fields(self) -> dict[str, Any]:
        """What a task copies from its function when it is created: the code it will run
        (so a later build changes nothing for it) and the limits it runs under."""
        return {
            "function_id": self.id,
            "build_id": self.build_id,
            "code_key": self.code_key,
            "lambda_version": self.lambda_version,
            "timeout": self.capabilities.timeout,
            "capabilities": self.capabilities,
            "lang": self.lang,
            "url": self.url,
        }


class BuildStatus(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class BuildRecord(Record):
    id: str
    owner: str
    function_id: str
    status: BuildStatus
    arch: list[str] = ["amd64"]
    timeline: list[dict[str, Any]] = []
    log: list[str] = []
    code_key: str = ""
    lambda_version: str = ""
    created_at: int


def answer_status(response_status: int, failed: bool) -> int:
    """A finished task's HTTP status: its function's own; for one with none (see
    answer_of_unanswered), 200 when it succeeded, else 500."""
    return response_status or (500 if failed else 200)


def answer_of_unanswered(failed: bool, failure_reason: str, result: str) -> tuple[
    int, str, bytes
]:
    """What a finished task with no HTTP answer of its own answers (status, content type,
    body): one a Cell API cell completed reports a result string, 200 when it succeeded; one
    that failed (cancelled, expired, failed by its cell) its failure as a JSON error, 500."""
    if not failed:
        return 200, "text/plain; charset=utf-8", result.encode()
    error = {"errorType": "TaskFailed", "errorMessage": failure_reason}
    return 500, "application/json", json.dumps(error).encode()


class TaskSummary(Record):
    """A task as list views show it: as the owner listing (GSI1) projects it, nothing that
    a start changes; or read by key for a page of GSI2 (by function)."""

    task_guid: str
    created_at: int
    progress: int = 0
    response_status: int = 0
    failed: bool = False
    first_completed_at: int = 0

    @property
    def finished(self) -> bool:
        return self.first_completed_at > 0


# Fields of user JSON, and the attributes that keep them as JSON text (taskfn.userjson): a
# DynamoDB map cannot hold every JSON object, and a task that cannot be read back breaks
# every reader of it.
JSON_TEXT_FIELDS = {"input": "input_json", "task_definition": "definition_json",
                    "envs": "envs_json"}


class TaskRecord(Record):
    """One task, whichever API created it. BBS's fields plus the runtime's own."""

    task_guid: str
    domain: str = "taskfn"
    owner: str
    # The Cell API's TaskDefinition as desired, without the fields below that the platform
    # acts on (kept once, as fields of their own). None for tasks other APIs created.
    task_definition: dict[str, Any] | None = None
    placement_tags: list[str] = []
    completion_callback_url: str = ""
    annotation: str = ""
    function_id: str = ""
    # The function's language and, for an HTTP function, its URL, copied at creation: the
    # executor runs the task without reading the function. "" for Cell API tasks without one.
    lang: str = ""
    url: str = ""
    # The schedule that created the task (GreenCloud's scheduleId; the CSV export filters on
    # it); "" for tasks created by a call.
    schedule_id: str = ""
    # The public endpoint whose call created the task (POST /gc/{endpointId}): its result is
    # readable without a token for a while, and the endpoint's counters count it. "" else.
    endpoint_id: str = ""
    # Triggers (services/triggers.py): the task whose finish created this one ("" else), and
    # how many chained tasks precede it (0 for a task nothing triggered).
    triggered_by: str = ""
    trigger_depth: int = 0
    # The first task of the chain this one belongs to (its budget: services/triggers.py).
    trigger_root: str = ""
    # Set while the task waits for its paused function to be resumed (taskfn.services.holds):
    # when it was held. A held task is on no open index shard, so convergence leaves it.
    held_at: int = 0
    # The code the task runs, fixed when it is created: a later build does not change what
    # a queued task runs, and the executor needs no read of the function.
    build_id: str = ""
    code_key: str = ""
    lambda_version: str = ""
    state: State = State.PENDING
    cell_id: str = ""
    node: str = ""
    created_at: int
    updated_at: int
    started_at: int = 0
    first_completed_at: int = 0
    failed: bool = False
    failure_reason: str = ""
    result: str = ""
    rejection_count: int = 0
    rejection_reason: str = ""
    # Retries the task asked for, how many it used, when the next attempt may start, and the
    # attempts that failed before the current one (the task's own fields are the latest).
    retries: int = 0
    retried: int = 0
    retry_at: int = 0
    attempts: list[dict[str, Any]] = []
    progress: int = 0
    timeout: int = 10
    capabilities: Capabilities = Capabilities()
    # The input handed to the function: inline, or in S3 under input_key.
    input: dict[str, Any] | None = None
    input_key: str = ""
    # The function's HTTP response: status and headers always inline; the body inline or
    # in S3 under response_key.
    response_status: int = 0
    response_headers: dict[str, str] = {}
    response_body: str | None = None
    response_base64: bool = False
    response_key: str = ""
    # Captured output: inline when small, else in S3 under *_key.
    stdout: str = ""
    stderr: str = ""
    stdout_key: str = ""
    stderr_key: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    duration_ms: float = 0
    # A fastlane job's run (lang "container", services/jobs.py; docs/design/jobs-api.md):
    # the group and job it runs, what it runs, when it may no longer start (epoch s, 0 for
    # never), who asked, and the current attempt: its execution id (the first is the task
    # guid), exit code, outcome (succeeded, failed, timedout, expired, stopped), container
    # and what was asked of it. An earlier attempt's own are in `attempts`.
    job_task_id: str = ""
    job_id: str = ""
    image: str = ""
    command: str = ""
    envs: dict[str, str] | None = None
    expiration: float = 0
    request_ip: str = ""
    execution_id: str = ""
    exit_code: int | None = None
    outcome: str = ""
    container_ref: str = ""
    container_status: str = ""
    stop_requested: str = ""
    # A Coder agent task (services/agenttasks.py, adapters/coder.py): a conversation whose
    # attempts are its turns, counted from 1 (0: not a conversation) since `turn_at`. The
    # task's input is the current turn's {"input", "history", "time"}; its response is the
    # turn's output. The name (unique per owner, case-insensitive: its name item), display
    # name, initial prompt and preset as given; the function's last reported state as JSON
    # text {timestamp, state, message, uri} (never a DynamoDB map).
    turn: int = 0
    turn_at: int = 0
    agent_name: str = ""
    agent_display_name: str = ""
    initial_prompt: str = ""
    preset_id: str = ""
    state_json: str = ""
    # When the record and its outputs are gone (epoch seconds, the table's TTL attribute),
    # fixed at creation; 0 for records written before retention existed. DynamoDB deletes an
    # expired item lazily (up to days later), so readers treat it as gone from this moment.
    expires_at: int = 0
    # Set by the store when the item carries the domain index (a Cell API task), so a read of
    # a few attributes, without the definition, still knows; never written itself.
    cell_api: bool = Field(False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _from_json_text(cls, data: Any) -> Any:
        """An item read back: its user JSON from the text it is kept as."""
        if isinstance(data, dict) and any(name in data for name in JSON_TEXT_FIELDS.values()):
            data = dict(data)
            for field, attribute in JSON_TEXT_FIELDS.items():
                if attribute in data:
                    data[field] = json.loads(data.pop(attribute))
        return data

    @property
    def finished(self) -> bool:
        return self.state in (State.COMPLETED, State.RESOLVING)

    @property
    def desired(self) -> bool:
        """Desired through the Cell API: listed by domain, placed by its tags, and deleted by
        convergence once Completed past the completed expiry (as BBS does)."""
        return self.task_definition is not None or self.cell_api

    def expired(self, now: int) -> bool:
        """Past its expires_at at `now` (ns): gone for every reader, whether or not DynamoDB
        has deleted it yet."""
        return 0 < self.expires_at <= now // SECOND_NS
