"""The container runtime in AWS: each fastlane execution is an ECS Fargate task (docs/design/
jobs-api.md §3.2). A job is an image and a command, and users bring any image, so the task
definition is per image: registered the first time an image is run, remembered in the table
(`FLIMG#<sha>` / `TASKDEF`) and reused, while the command and envs travel as RunTask overrides.
Registering on every launch would add a revision per run (ECS keeps every revision) and a
call that is throttled at a low rate.

AWS calls per launch: the first run of an image costs 4 (GetItem, RegisterTaskDefinition,
PutItem, RunTask); every later one 2 (GetItem, RunTask). A launch that loses the race to
register reads the winner's ARN from its failed conditional put (ALL_OLD), so it costs 4 too.

What refuses a run (no capacity, throttling, a bad image or parameter) is LaunchRefused: the
task goes back to Pending. Configuration errors (no such cluster, access denied) propagate:
retrying them later would not help, and they must be seen."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from taskfn.runtime.containers import (
    CONTAINER_NAME,
    GROUP_PREFIX,
    LOG_STREAM_PREFIX,
    Launch,
    LaunchRefused,
)
from taskfn.stores.table import Table, from_item, is_conditional_failure, to_item

logger = logging.getLogger(__name__)

TASK_CPU = "256"
TASK_MEMORY = "512"
OVERRIDES_MAX_CHARS = 8192  # ECS's limit on a RunTask's overrides, JSON formatting included
STARTED_BY_MAX = 36  # ECS's limit on startedBy
CLIENT_TOKEN_MAX = 64  # ECS's limit on clientToken
GROUP_MAX = 255  # ECS's limit on group
REASON_MAX = 255  # ECS's limit on StopTask's reason
# Errors that say "not now": the run is tried again later.
_BUSY_CODES = frozenset({"ThrottlingException", "ServerException", "Throttling",
                         "ThrottledException", "RequestLimitExceeded",
                         "TooManyRequestsException", "ServiceUnavailable"})
# Errors that say "not this run": a bad image name or parameter. The AWS message is kept,
# since it is what tells the user what is wrong.
_REFUSED_CODES = frozenset({"InvalidParameterException", "ClientException",
                            "PlatformUnknownException",
                            "PlatformTaskDefinitionIncompatibilityException",
                            "UnsupportedFeatureException", "BlockedException"})
# StopTask's answer for a task ECS no longer knows (gone, or never there).
_GONE_CODES = frozenset({"InvalidParameterException", "ResourceNotFoundException",
                         "TaskNotFoundException"})


def image_key(image: str) -> str:
    """The sha256 of the image string, hex: its task definition's key and family."""
    return hashlib.sha256(image.encode()).hexdigest()


def container_overrides(launch: Launch) -> dict[str, Any]:
    """RunTask's `overrides`: the job container's command and environment."""
    return {"containerOverrides": [{
        "name": CONTAINER_NAME,
        "command": list(launch.argv),
        "environment": [{"name": name, "value": value} for name, value in launch.envs.items()],
    }]}


def overrides_length(launch: Launch) -> int:
    """How many characters of ECS's 8192 the launch's overrides take, measured as the SDK
    sends them (JSON with botocore's separators, non-ASCII escaped): an upper bound of ECS's
    own count, so what passes here passes there. For callers that refuse jobs up front."""
    return len(json.dumps(container_overrides(launch)))


class EcsRuntime:
    """Runs each execution as a Fargate task on one cluster, in the given network."""

    name = "ecs-fargate"

    def __init__(self, ecs: Any, table: Table, *, cluster_arn: str, subnets: list[str],
                 security_groups: list[str], assign_public_ip: bool, execution_role_arn: str,
                 log_group: str, region: str, family_prefix: str) -> None:
        self.ecs = ecs
        self.table = table
        self.cluster_arn = cluster_arn
        self.subnets = list(subnets)
        self.security_groups = list(security_groups)
        self.assign_public_ip = assign_public_ip
        self.execution_role_arn = execution_role_arn
        self.log_group = log_group
        self.region = region
        self.family_prefix = family_prefix

    # --- the port ---------------------------------------------------------------------------

    def launch(self, launch: Launch) -> str:
        """Start the execution's task; its ARN. The execution id is RunTask's client token,
        so a redelivered launch gets the task already started, not a second one."""
        overrides = container_overrides(launch)
        length = len(json.dumps(overrides))
        if length > OVERRIDES_MAX_CHARS:
            raise ValueError(f"the command and envs take {length} characters as ECS overrides;"
                             f" ECS allows {OVERRIDES_MAX_CHARS}")
        self._check_lengths(launch)
        task_definition = self.task_definition(launch.image)
        try:
            answer = self.ecs.run_task(
                cluster=self.cluster_arn, launchType="FARGATE", count=1,
                taskDefinition=task_definition, startedBy=launch.task_guid,
                group=GROUP_PREFIX + launch.execution_id, clientToken=launch.execution_id,
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": self.subnets, "securityGroups": self.security_groups,
                    "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED"}},
                overrides=overrides)
        except ClientError as error:
            refused = _refusal("RunTask", error)
            if refused is None:
                raise
            raise refused from error
        tasks = answer.get("tasks") or []
        if not tasks:
            raise LaunchRefused(_failures(answer.get("failures") or []))
        return tasks[0]["taskArn"]

    def stop(self, ref: str, reason: str) -> None:
        """StopTask; a task ECS no longer knows is already stopped, no error."""
        try:
            self.ecs.stop_task(cluster=self.cluster_arn, task=ref, reason=reason[:REASON_MAX])
        except ClientError as error:
            if _code(error) not in _GONE_CODES:
                raise
            logger.info("task %s not stopped, ECS does not know it: %s", ref, _message(error))

    # --- task definitions -------------------------------------------------------------------

    def task_definition(self, image: str) -> str:
        """The ARN of the image's task definition, registered on its first run."""
        sha = image_key(image)
        pk, sk = f"FLIMG#{sha[:32]}", "TASKDEF"
        known = self.table.get(pk, sk)
        if known:
            return known["task_definition_arn"]
        arn = self._register(image, sha)
        try:
            self.table.client.put_item(
                TableName=self.table.name,
                Item=to_item({"PK": pk, "SK": sk, "image": image, "task_definition_arn": arn,
                              "registered_at": time.time_ns()}),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            # Another launch registered the image meanwhile: both revisions work, the
            # winner's is the one every later launch uses.
            old = error.response.get("Item")
            winner = from_item(old) if old else self.table.get(pk, sk, consistent=True)
            if winner and winner.get("task_definition_arn"):
                logger.info("image %s: registered by another launch meanwhile", sha[:16])
                return winner["task_definition_arn"]
            raise
        return arn

    def _register(self, image: str, sha: str) -> str:
        try:
            answer = self.ecs.register_task_definition(
                family=f"{self.family_prefix}img-{sha[:16]}",
                requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                cpu=TASK_CPU, memory=TASK_MEMORY,
                # No task role: the job's own code gets no AWS credentials at all. The
                # execution role (ECS's, never the container's) pulls and writes the logs.
                executionRoleArn=self.execution_role_arn,
                containerDefinitions=[
                    {"name": CONTAINER_NAME, "image": image, "essential": True,
                     # awslogs, not FireLens: FireLens' router writes with the task role,
                     # which the job's code would then hold (runtime/containers.py).
                     "logConfiguration": {"logDriver": "awslogs", "options": {
                         "awslogs-group": self.log_group, "awslogs-region": self.region,
                         "awslogs-stream-prefix": LOG_STREAM_PREFIX}}},
                ])
        except ClientError as error:
            refused = _refusal("RegisterTaskDefinition", error)
            if refused is None:
                raise
            raise refused from error
        return answer["taskDefinition"]["taskDefinitionArn"]

    @staticmethod
    def _check_lengths(launch: Launch) -> None:
        """ECS refuses these with InvalidParameterException, which would send the run back
        to Pending for ever: a programming error, said as one."""
        if not 0 < len(launch.task_guid) <= STARTED_BY_MAX:
            raise ValueError(f"task guid {launch.task_guid!r}: ECS's startedBy takes 1 to "
                             f"{STARTED_BY_MAX} characters")
        if not 0 < len(launch.execution_id) <= min(CLIENT_TOKEN_MAX,
                                                    GROUP_MAX - len(GROUP_PREFIX)):
            raise ValueError(f"execution id {launch.execution_id!r}: ECS's clientToken takes "
                             f"1 to {CLIENT_TOKEN_MAX} characters")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "")


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message") or "")


def _status(error: ClientError) -> int:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else 0


def _refusal(operation: str, error: ClientError) -> LaunchRefused | None:
    """A ClientError as LaunchRefused when it refuses this run; None when it is another
    (a configuration error, which trying later does not cure)."""
    code, message = _code(error), _message(error)
    if code in _BUSY_CODES or _status(error) >= 500:
        return LaunchRefused(f"ECS is busy ({operation}: {code or _status(error)}); "
                             "the run is tried again later")
    if code in _REFUSED_CODES:
        return LaunchRefused(f"ECS refused the run ({operation}: {code}): {message}")
    return None


def _failures(failures: list[dict[str, Any]]) -> str:
    """RunTask's failures as one readable reason (e.g. "RESOURCE:CPU", "AGENT")."""
    said = []
    for failure in failures:
        reason = str(failure.get("reason") or "unknown reason")
        detail = failure.get("detail")
        said.append(f"{reason} ({detail})" if detail else reason)
    return "ECS did not start the task: " + ("; ".join(said) or "no task and no reason given")
