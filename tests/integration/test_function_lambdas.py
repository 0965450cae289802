"""Isolation "lambda": builds deploy each function as a Lambda of its own (on moto), the
executor invokes it (through botocore's own request and response shapes), and deleting the
function or the stack deletes it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from taskfn import aws, wiring
from taskfn.models import BuildStatus
from taskfn.runtime.codecache import CodeCache
from taskfn.services import stack
from taskfn.services.builds import BuildService
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.lambdas import HANDLER, KEEP_VERSIONS, FunctionLambdas

from .helpers import ALICE, make_zip

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "tfn-test1234-"
SOURCE = "def handler(event, context):\n    return {'n': 1}\n"


@dataclass
class Deployed:
    lambdas: FunctionLambdas
    functions: FunctionService
    role_arn: str
    layer_arn: str

    def function(self, source: str = SOURCE) -> str:
        return self.functions.create(ALICE, NewFunction(name="f", source=source)).id


@pytest.fixture
def deployed(backend) -> Iterator[Deployed]:
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="taskfn-function-role",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    layer = aws.client("lambda").publish_layer_version(
        LayerName="taskfn", Content={"ZipFile": make_zip({"python/taskfn/__init__.py": ""})}
    )["LayerVersionArn"]
    lambdas = FunctionLambdas(aws.client("lambda"), prefix=PREFIX, role_arn=role,
                              layers=[layer], stack="taskfn-test")
    builds = BuildService(wiring.builds(), wiring.functions(), wiring.blobs(), lambdas)
    yield Deployed(lambdas, FunctionService(wiring.functions(), builds), role, layer)


def lambda_of(function_id: str) -> dict:
    return aws.client("lambda").get_function(FunctionName=f"{PREFIX}{function_id}")


def test_a_build_deploys_the_function_as_a_lambda_of_its_own(deployed):
    function_id = deployed.function()
    got = lambda_of(function_id)
    config = got["Configuration"]
    assert config["FunctionName"] == f"{PREFIX}{function_id}"
    assert (config["Runtime"], config["Handler"]) == ("python3.13", HANDLER)
    assert config["Role"] == deployed.role_arn
    assert [layer["Arn"] for layer in config["Layers"]] == [deployed.layer_arn]
    assert (config["MemorySize"], config["Timeout"]) == (512, 10 + 10)
    assert got["Tags"] == {"taskfn:function": function_id, "taskfn:owner": "alice",
                           "taskfn:stack": "taskfn-test"}
    record = wiring.functions().get(function_id)
    assert record.lambda_version == "1"
    assert wiring.builds().get(record.build_id).lambda_version == "1"


def test_a_later_build_publishes_a_new_version_and_queued_tasks_keep_theirs(deployed):
    function_id = deployed.function()
    first_task = TaskService.from_env().create(ALICE, function_id, body=None, query={}, size=0)
    archive = make_zip({"main.py": "def handler(event, context):\n    return 2\n"})
    build = deployed.functions.builds.create(ALICE, function_id, archive)
    assert build.status is BuildStatus.SUCCESS, build.log
    assert build.lambda_version == "2" and "deployed as version 2" in build.log[-1]
    second_task = TaskService.from_env().create(ALICE, function_id, body=None, query={}, size=0)
    assert wiring.tasks().get(first_task.task_guid).lambda_version == "1"
    assert wiring.tasks().get(second_task.task_guid).lambda_version == "2"
    config = aws.client("lambda").get_function_configuration(
        FunctionName=f"{PREFIX}{function_id}", Qualifier="2")
    assert config["CodeSha256"] != aws.client("lambda").get_function_configuration(
        FunctionName=f"{PREFIX}{function_id}", Qualifier="1")["CodeSha256"]


def test_old_versions_are_deleted(deployed):
    function_id = deployed.function()
    for n in range(KEEP_VERSIONS + 2):
        archive = make_zip({"main.py": f"def handler(event, context):\n    return {n}\n"})
        assert deployed.functions.builds.create(ALICE, function_id, archive).status is \
            BuildStatus.SUCCESS
    versions = aws.client("lambda").list_versions_by_function(
        FunctionName=f"{PREFIX}{function_id}")["Versions"]
    numbered = [v["Version"] for v in versions if v["Version"] != "$LATEST"]
    # (moto numbers a new version after the count left, so numbers repeat there; Lambda's
    # never do.) The newest builds' versions are what is left.
    assert len(numbered) == KEEP_VERSIONS
    assert wiring.functions().get(function_id).lambda_version in numbered


def test_changed_capabilities_change_the_lambdas_configuration(deployed):
    function_id = deployed.function()
    wiring.table().update(f"FUNC#{function_id}", "FUNC",
                          set_values={"capabilities": {"timeout": 60, "memSize": 1024}},
                          condition="attribute_exists(PK)")
    function = wiring.functions().get(function_id)
    assert deployed.lambdas.configure(function) is True
    config = lambda_of(function_id)["Configuration"]
    assert (config["MemorySize"], config["Timeout"]) == (1024, 70)
    assert deployed.lambdas.configure(function) is False  # nothing to change


def test_a_build_that_cannot_be_deployed_fails_and_says_why(deployed):
    broken = FunctionLambdas(aws.client("lambda"), prefix=PREFIX,
                             role_arn="arn:aws:iam::123456789012:role/missing", layers=[])
    builds = BuildService(wiring.builds(), wiring.functions(), wiring.blobs(), broken)
    function = FunctionService(wiring.functions(), builds).create(ALICE, NewFunction(name="f"))
    build = builds.create(ALICE, function.id, make_zip({"main.py": SOURCE}))
    assert build.status is BuildStatus.FAILED
    assert build.log[-1].startswith("the function could not be deployed: ")
    assert wiring.functions().get(function.id).build_id == ""


def test_deleting_the_function_deletes_its_lambda(deployed):
    function_id = deployed.function()
    deployed.functions.delete(ALICE, function_id)
    with pytest.raises(aws.client("lambda").exceptions.ResourceNotFoundException):
        lambda_of(function_id)


def test_deleting_the_stack_deletes_every_function_lambda_and_nothing_else(deployed):
    ours = [deployed.function() for _ in range(3)]
    aws.client("lambda").create_function(
        FunctionName="someone-elses", Runtime="python3.13", Handler="h.h",
        Role=deployed.role_arn, Code={"ZipFile": make_zip({"h.py": ""})})
    event = json.loads((ROOT / "events/stack/cleanup_function_lambdas.json").read_text())
    assert stack.on_event({**event, "RequestType": "Update"}, deployed.lambdas) == (
        "SUCCESS", "nothing to do")
    assert stack.on_event(event, deployed.lambdas) == ("SUCCESS", "deleted 3 function Lambda(s)")
    names = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert names == {"someone-elses"} and not any(PREFIX + fid in names for fid in ours)


# --- the executor's invoke, through botocore's own shapes -----------------------------------


def answer(payload: object, **extra) -> dict:
    body = json.dumps(payload).encode()
    return {"StatusCode": 200, "ExecutedVersion": "1",
            "Payload": StreamingBody(io.BytesIO(body), len(body)), **extra}


@pytest.fixture
def stubbed(backend, tmp_path):
    """An executor in isolation "lambda" whose Lambda client is a botocore Stubber."""
    client = boto3.client("lambda")
    lambdas = FunctionLambdas(client, prefix=PREFIX, role_arn="", layers=[])
    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        CodeCache(tmp_path / "code"), "executor-a", get_settings(),
                        queue=wiring.task_queue(), lambdas=lambdas)
    sent: list[dict] = []
    client.meta.events.register("before-parameter-build.lambda.Invoke",
                                lambda params, **_: sent.append(json.loads(params["Payload"])))
    with Stubber(client) as stub:
        yield executor, stub, sent
        stub.assert_no_pending_responses()


def task_for(function_id: str, version: str, body: object = None) -> str:
    from taskfn.services.tasks import TaskService

    wiring.table().update(f"FUNC#{function_id}", "FUNC", set_values={"lambda_version": version},
                          condition="attribute_exists(PK)")
    return TaskService.from_env().create(ALICE, function_id, body=body, query={"q": "1"},
                                         size=len(json.dumps(body))).task_guid


def plain_function() -> str:
    builds = BuildService(wiring.builds(), wiring.functions(), wiring.blobs())
    return FunctionService(wiring.functions(), builds).create(
        ALICE, NewFunction(name="f", source=SOURCE)).id


def test_the_executor_runs_a_task_in_its_functions_lambda(stubbed):
    executor, stub, sent = stubbed
    function_id = plain_function()
    task_id = task_for(function_id, "7", {"name": "Ada"})
    stub.add_response("invoke", answer({
        "succeeded": True, "timed_out": False, "status_code": 200,
        "headers": {"Content-Type": "application/json"}, "body": '{"hi": "Ada"}',
        "is_base64": False, "stdout": "said hi\n", "stderr": "", "stdout_dropped": 0,
        "stderr_dropped": 0, "failure_reason": "", "duration_ms": 3.5}),
        expected_params={"FunctionName": f"{PREFIX}{function_id}", "Qualifier": "7",
                         "InvocationType": "RequestResponse", "Payload": ANY})
    assert executor.run(task_id) == "succeeded"
    (request,) = sent
    assert request["event"] == {"body": {"name": "Ada"}, "query": {"q": "1"},
                                "taskId": task_id, "functionId": function_id}
    assert request["limits"] == {"timeout_s": 10.0, "memory_mb": 512}
    result = TaskService.from_env().result(ALICE, task_id)
    assert (result.status, result.body) == (200, b'{"hi": "Ada"}')
    assert wiring.tasks().get(task_id).stdout == "said hi\n"


def test_a_lambda_that_died_fails_the_task_as_a_process_that_died_would(stubbed):
    executor, stub, _ = stubbed
    function_id = plain_function()
    timed_out, crashed = task_for(function_id, "1"), task_for(function_id, "1")
    stub.add_response("invoke", answer(
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 20.00 seconds"},
        FunctionError="Unhandled"))
    stub.add_response("invoke", answer(
        {"errorType": "Runtime.ExitError", "errorMessage": "signal: killed"},
        FunctionError="Unhandled"))
    assert executor.run(timed_out) == "failed"
    assert executor.run(crashed) == "failed"
    first, second = wiring.tasks().get(timed_out), wiring.tasks().get(crashed)
    assert (first.response_status, first.failure_reason) == (504, "timed out after 10 s")
    assert second.response_status == 500
    assert second.failure_reason == "the function's Lambda failed: signal: killed"


def test_a_deleted_functions_task_fails_and_one_being_deployed_waits(stubbed, monkeypatch):
    executor, stub, _ = stubbed
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    function_id = plain_function()
    gone, waiting = task_for(function_id, "1"), task_for(function_id, "1")
    stub.add_client_error("invoke", "ResourceNotFoundException", http_status_code=404)
    stub.add_client_error("invoke", "ResourceConflictException", http_status_code=409)
    stub.add_response("invoke", answer({
        "succeeded": True, "timed_out": False, "status_code": 200, "headers": {},
        "body": "ok"}))
    assert executor.run(gone) == "failed"
    assert wiring.tasks().get(gone).failure_reason == "the function was deleted"
    assert executor.run(waiting) == "succeeded"


def test_a_malformed_answer_fails_the_task(stubbed):
    executor, stub, _ = stubbed
    task_id = task_for(plain_function(), "1")
    stub.add_response("invoke", answer({"status_code": "two hundred", "body": 5}))
    assert executor.run(task_id) == "failed"
    assert wiring.tasks().get(task_id).failure_reason.startswith(
        "malformed answer from the function's Lambda")
