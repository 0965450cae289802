"""Each function's own Lambda function (isolation "lambda"): deployed by its builds, invoked by
the executor, deleted with it.

A function's Lambda is named `<prefix><function id>`, runs the taskfn layer's bootstrap
(runtime.function_entry) with the user's zip as its code, and has a role that grants nothing:
nothing it runs can reach the platform's data, and its warm environments serve no other
function. Every build publishes a version, and a task invokes the version of the build it was
created with, so a later build does not change what a queued task runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import FunctionRecord
from taskfn.runtime.python import DEFAULT_MEMORY_MB, Execution, Limits, failure

logger = logging.getLogger(__name__)

HANDLER = "taskfn.runtime.function_entry.handler"
RUNTIME = "python3.13"
LOGGING = {"LogFormat": "JSON", "SystemLogLevel": "WARN", "ApplicationLogLevel": "WARN"}
KEEP_VERSIONS = 5  # older versions are deleted; no task waits that long (Pending expiry)
_READY_WAIT_S = 25.0  # a build answers within its request: at most this long for Active
_POLL_S = 0.5
_NOT_READY_WAIT_S = 60.0  # a task of a function still being deployed waits this long
_EXECUTION_FIELDS = {field.name: field.type for field in Execution.__dataclass_fields__.values()}


class FunctionGone(Exception):
    """The function's Lambda (or the version a task asked for) does not exist."""


class FunctionNotReady(Exception):
    """The function's Lambda is still being created or updated."""


@dataclass(frozen=True)
class Configuration:
    """What a function's Lambda is configured with, from the function's capabilities."""

    memory_mb: int
    timeout_s: int

    @classmethod
    def of(cls, function: FunctionRecord, margin_s: int) -> Configuration:
        memory = function.capabilities.memSize or DEFAULT_MEMORY_MB
        return cls(memory_mb=max(128, min(10240, memory)),
                   timeout_s=min(900, function.capabilities.timeout + margin_s))


class FunctionLambdas:
    """Create, update, invoke and delete the functions' own Lambdas."""

    def __init__(self, client: Any, *, prefix: str, role_arn: str, layers: list[str],
                 stack: str = "", margin_s: int = 10):
        self.client = client
        self.prefix = prefix
        self.role_arn = role_arn
        self.layers = layers
        self.stack = stack
        self.margin_s = margin_s

    def name(self, function_id: str) -> str:
        return f"{self.prefix}{function_id}"

    def deploy(self, function: FunctionRecord, archive: bytes) -> str:
        """Put this code into the function's Lambda (creating it the first time), wait until
        it can run, and return the version published for it."""
        name = self.name(function.id)
        wanted = Configuration.of(function, self.margin_s)
        try:
            created = self.client.create_function(
                FunctionName=name, Runtime=RUNTIME, Handler=HANDLER, Role=self.role_arn,
                Code={"ZipFile": archive}, MemorySize=wanted.memory_mb,
                Timeout=wanted.timeout_s, Layers=self.layers, Publish=True,
                Architectures=["x86_64"], Tags=self._tags(function),
                Description=f"taskfn function {function.id}",
                # Lambda's START/END/REPORT lines are INFO: one invocation a task would
                # write about 1 KB of them (the run's output comes back in the answer).
                LoggingConfig=LOGGING,
            )
        except ClientError as error:
            if _code(error) != "ResourceConflictException":  # it exists: a later build
                raise
        else:
            self._wait_ready(name, created["Version"])
            return created["Version"]
        self._wait_ready(name)
        self.configure(function)
        updated = self.client.update_function_code(FunctionName=name, ZipFile=archive,
                                                   Publish=True)
        self._wait_ready(name, updated["Version"])
        self._prune(name)
        return updated["Version"]

    def configure(self, function: FunctionRecord) -> bool:
        """Give the function's Lambda the memory and timeout of its capabilities; True if
        they changed."""
        name = self.name(function.id)
        wanted = Configuration.of(function, self.margin_s)
        current = self.client.get_function_configuration(FunctionName=name)
        if (current.get("MemorySize"), current.get("Timeout")) == (wanted.memory_mb,
                                                                   wanted.timeout_s):
            return False
        self.client.update_function_configuration(
            FunctionName=name, MemorySize=wanted.memory_mb, Timeout=wanted.timeout_s)
        self._wait_ready(name)
        return True

    def delete(self, function_id: str) -> None:
        """Delete the function's Lambda and all its versions (nothing if there is none)."""
        try:
            self.client.delete_function(FunctionName=self.name(function_id))
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise

    def delete_all(self) -> int:
        """Delete every Lambda under this prefix (the stack is going); how many."""
        names = [fn["FunctionName"]
                 for page in self.client.get_paginator("list_functions").paginate()
                 for fn in page["Functions"] if fn["FunctionName"].startswith(self.prefix)]
        for name in names:
            self.delete(name[len(self.prefix):])
        return len(names)

    def invoke(self, function_id: str, version: str, payload: dict) -> dict:
        """Run one task in the function's Lambda and return what its bootstrap answered.

        FunctionGone when the function (or that version) was deleted, FunctionNotReady while
        it is still being created. An answer with FunctionError (the bootstrap itself died:
        Lambda's own timeout, out of memory) comes back as {"lambda_error": ...}."""
        arguments: dict[str, Any] = {"FunctionName": self.name(function_id),
                                     "InvocationType": "RequestResponse",
                                     "Payload": json.dumps(payload).encode()}
        if version:
            arguments["Qualifier"] = version
        try:
            answer = self.client.invoke(**arguments)
        except ClientError as error:
            code = _code(error)
            if code == "ResourceNotFoundException":
                raise FunctionGone(self.name(function_id)) from error
            if code == "ResourceConflictException":
                raise FunctionNotReady(self.name(function_id)) from error
            raise
        body = answer["Payload"].read()
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = body.decode("utf-8", "replace")
        if answer.get("FunctionError"):
            return {"lambda_error": decoded}
        return decoded if isinstance(decoded, dict) else {"lambda_error": decoded}

    def run(self, function_id: str, version: str, event: dict, limits: Limits,
            task_id: str) -> Execution:
        """Run one task in its function's Lambda: the same Execution as a process run.

        A function still being deployed is waited for; a deleted one fails the task."""
        started = time.monotonic()
        request = {"event": event, "taskId": task_id, "functionId": function_id,
                   "limits": {"timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb}}
        deadline = started + _NOT_READY_WAIT_S
        while True:
            try:
                answer = self.invoke(function_id, version, request)
                break
            except FunctionGone:
                return failure(500, "FunctionNotFound", "the function was deleted",
                               reason="the function was deleted", started=started)
            except FunctionNotReady:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        return execution_of(answer, started, limits)

    def _tags(self, function: FunctionRecord) -> dict[str, str]:
        tags = {"taskfn:function": function.id, "taskfn:owner": function.owner[:256]}
        if self.stack:
            tags["taskfn:stack"] = self.stack
        return tags

    def _wait_ready(self, name: str, version: str | None = None) -> None:
        """Until the function (or version) is Active and its last update Successful."""
        deadline = time.monotonic() + _READY_WAIT_S
        arguments = {"FunctionName": name, **({"Qualifier": version} if version else {})}
        while True:
            current = self.client.get_function_configuration(**arguments)
            state = current.get("State") or "Active"
            update = current.get("LastUpdateStatus") or "Successful"
            if state == "Failed" or update == "Failed":
                reason = current.get("StateReason") or current.get("LastUpdateStatusReason")
                raise RuntimeError(f"Lambda {name} could not be deployed: {reason}")
            if state == "Active" and update == "Successful":
                return
            if time.monotonic() > deadline:
                logger.warning("Lambda %s is still %s/%s; tasks wait for it", name, state, update)
                return
            time.sleep(_POLL_S)

    def _prune(self, name: str) -> None:
        """Delete all but the newest KEEP_VERSIONS published versions."""
        versions: list[int] = []
        for page in self.client.get_paginator("list_versions_by_function").paginate(
                FunctionName=name):
            versions += [int(v["Version"]) for v in page["Versions"] if v["Version"].isdigit()]
        for old in sorted(versions)[:-KEEP_VERSIONS]:
            try:
                self.client.delete_function(FunctionName=name, Qualifier=str(old))
            except ClientError as error:
                logger.warning("could not delete version %s of %s: %s", old, name, error)


def execution_of(answer: dict, started: float, limits: Limits) -> Execution:
    """What a function's Lambda answered, as an Execution; a Lambda that died (its own
    timeout, out of memory) fails the run as a process that died would."""
    elapsed = {"duration_ms": (time.monotonic() - started) * 1000.0}
    if "lambda_error" in answer:
        error = answer["lambda_error"]
        message = str(error.get("errorMessage", error) if isinstance(error, dict) else error)
        if "timed out" in message.lower():
            reason = f"timed out after {limits.timeout_s:g} s"
            return failure(504, "TimeoutError", reason, reason=reason, timed_out=True, **elapsed)
        reason = f"the function's Lambda failed: {' '.join(message.split())[:500]}"
        return failure(500, "Runtime.ExitError", reason, reason=reason, **elapsed)
    fields = {name: answer[name] for name in _EXECUTION_FIELDS if name in answer}
    try:
        execution = Execution(**fields)
        if not isinstance(execution.status_code, int) or not isinstance(execution.body, str):
            raise TypeError("status_code and body")
        return dataclasses.replace(execution, headers={str(k): str(v) for k, v in
                                                       dict(execution.headers).items()})
    except (TypeError, ValueError) as error:
        reason = f"malformed answer from the function's Lambda: {error}"
        return failure(500, "Runtime.InvalidResult", reason, reason=reason, **elapsed)


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")
