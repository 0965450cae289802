"""Every Lambda handler invoked with its events/ file, against moto, plus generated events
for the bad inputs each must answer with a 4xx in GreenCloud's error shape."""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from taskfn import lifecycle, wiring
from taskfn.local.template import load_template
from taskfn.models import BuildRecord, BuildStatus, FunctionRecord, TaskRecord, now_ns
from taskfn.services.builds import BuildService
from taskfn.services.tokens import TokenService
from tests.integration.helpers import ALICE

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
FID, BID, TID = "6560f1a0aaaaaaaaaaaaaaaa", "6560f1a0bbbbbbbbbbbbbbbb", "6560f1a0cccccccccccccccc"
FRESH = "6560f1a0dddddddddddddddd"
SAMPLE_TOKEN = "tfn_sample-token-for-events-only"
_modules: dict[str, Any] = {}


class Context:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"
    log_stream_name = "2026/12/01/[$LATEST]0123"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def event_path(function_id: str) -> Path:
    spec = TEMPLATE.functions[function_id]
    module = spec.handler.split(".")[0]
    return ROOT / "events" / spec.code_uri.name / f"{module}.json"


def handler_module(function_id: str) -> Any:
    """The handler's module, imported once per session as Lambda imports it once per
    instance."""
    spec = TEMPLATE.functions[function_id]
    if function_id not in _modules:
        module_name, _ = spec.handler.split(".")
        loader = importlib.util.spec_from_file_location(
            f"handler_{function_id}", spec.code_uri / f"{module_name}.py"
        )
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
        _modules[function_id] = module
    return _modules[function_id]


def invoke(function_id: str, event: dict) -> dict:
    handler = getattr(handler_module(function_id), TEMPLATE.functions[function_id].handler
                      .split(".")[1])
    return handler(event, Context())


def load_event(function_id: str) -> dict:
    return json.loads(event_path(function_id).read_text())


@pytest.fixture
def seeded(backend):
    """The records the sample events name: alice's function, build and finished task."""
    TokenService.from_env().create("alice", "user", token=SAMPLE_TOKEN)
    function = FunctionRecord(id=FID, owner="alice", name="hello", created_at=1)
    wiring.functions().put_new(function)
    build = BuildService.from_env().create_from_source(
        ALICE, function, "def handler(event, context):\n    return {'got': event['body']}\n"
    )
    wiring.builds().put(BuildRecord(id=BID, owner="alice", function_id=FID,
                                    status=BuildStatus.SUCCESS, created_at=2))
    tasks = wiring.tasks()
    tasks.put_new(TaskRecord(task_guid=TID, owner="alice", function_id=FID, created_at=3,
                             updated_at=3, input={"body": {"n": 1}, "query": {}}))
    return build


def finish_sample_task() -> None:
    tasks = wiring.tasks()
    tasks.apply(TID, lifecycle.start("cell-t", 4))
    tasks.apply(TID, lifecycle.complete("cell-t", 5, failed=False, extra={
        "response_status": 202, "response_headers": {"Content-Type": "text/plain"},
        "response_body": "done", "stdout": "out", "stderr": ""}))


def test_every_function_has_an_event_file_and_every_event_a_function():
    files = {p.relative_to(ROOT / "events") for p in (ROOT / "events").rglob("*.json")}
    expected = {event_path(f).relative_to(ROOT / "events") for f in TEMPLATE.functions}
    assert files == expected


EXPECTED_STATUS = {
    "CreateFunctionFunction": 201,
    "GetFunctionFunction": 200,
    "ListFunctionsFunction": 200,
    "DeleteFunctionFunction": 204,
    "CreateBuildFunction": 201,
    "GetBuildFunction": 200,
    "CreateTaskFunction": 201,
    "GetTaskFunction": 200,
    "ListTasksFunction": 200,
    "GetTaskResultFunction": 202,
    "GetTaskLogsFunction": 200,
    "CreateTokenFunction": 201,
}


@pytest.mark.parametrize("function_id", sorted(EXPECTED_STATUS))
def test_http_handler_answers_its_sample_event(seeded, function_id):
    finish_sample_task()
    answer = invoke(function_id, load_event(function_id))
    assert answer["statusCode"] == EXPECTED_STATUS[function_id], answer


def test_sample_answers_carry_greencloud_fields(seeded):
    finish_sample_task()
    task = json.loads(invoke("GetTaskFunction", load_event("GetTaskFunction"))["body"])
    assert set(task) == {"functionId", "issued", "assigned", "finished", "progress", "node",
                         "timeout", "capabilities", "triggeredBy"}
    assert task["node"] == "cell-t"
    # The sample task was created at 3 ns since the epoch, long past the retention: not
    # listed any more. One created now is, in GreenCloud's fields.
    listed = json.loads(invoke("ListTasksFunction", load_event("ListTasksFunction"))["body"])
    assert listed == []
    created = now_ns()
    wiring.tasks().put_new(TaskRecord(task_guid=FRESH, owner="alice", function_id=FID,
                                      created_at=created, updated_at=created))
    listed = json.loads(invoke("ListTasksFunction", load_event("ListTasksFunction"))["body"])
    assert listed == [{"id": FRESH, "issued": str(created // 1_000_000_000), "progress": 0,
                       "status": 0}]
    result = invoke("GetTaskResultFunction", load_event("GetTaskResultFunction"))
    assert result["headers"]["Content-Type"] == "text/plain"
    assert (result["isBase64Encoded"], result["body"]) == (False, "done")
    build = json.loads(invoke("CreateBuildFunction", load_event("CreateBuildFunction"))["body"])
    got = wiring.builds().get(build["id"])
    assert got.status is BuildStatus.SUCCESS


def test_authorizer_identifies_the_sample_token(seeded):
    answer = invoke("AuthorizerFunction", load_event("AuthorizerFunction"))
    assert answer == {"isAuthorized": True,
                      "context": {"user": "alice", "scope": "user", "tokenId": answer[
                          "context"]["tokenId"], "node": "", "shared": ""}}
    event = load_event("AuthorizerFunction")
    event["headers"]["authorization"] = "Bearer wrong-token-wrong-token"
    assert invoke("AuthorizerFunction", event)["context"]["user"] == ""


def test_executor_runs_the_sample_message(seeded):
    answer = invoke("ExecutorFunction", load_event("ExecutorFunction"))
    assert answer == {"batchItemFailures": []}
    task = wiring.tasks().get(TID)
    assert task.state == "Completed" and task.response_status == 200
    assert json.loads(task.response_body) == {"got": {"n": 1}}
    again = invoke("ExecutorFunction", load_event("ExecutorFunction"))
    assert again == {"batchItemFailures": []}
    assert wiring.tasks().get(TID).first_completed_at == task.first_completed_at


def test_executor_counts_a_batch_of_one_function_with_one_counter_write(seeded, aws_calls):
    """Four tasks of one function in one SQS batch: their counts are right and written with
    one ADD to the function's counters item, not one a task."""
    event = load_event("ExecutorFunction")
    tasks = wiring.tasks()
    records = []
    for n in range(4):
        task_id = f"6560f1a00000000000000b0{n}"
        tasks.put_new(TaskRecord(task_guid=task_id, owner="alice", function_id=FID,
                                 created_at=now_ns(), updated_at=now_ns(),
                                 input={"body": {"n": n}, "query": {}}))
        record = copy.deepcopy(event["Records"][0])
        record["messageId"] = f"m{n}"
        record["body"] = json.dumps({"taskId": task_id})
        records.append(record)
    before = wiring.function_metrics().read(FID, now_ns())
    aws_calls.clear()
    assert invoke("ExecutorFunction", {"Records": records}) == {"batchItemFailures": []}
    after = wiring.function_metrics().read(FID, now_ns())
    assert after["completedTasks"] - before["completedTasks"] == 4
    assert before["pendingTasks"] - after["pendingTasks"] == 4
    counter_writes = [params for op, params in aws_calls if op == "UpdateItem"
                      and params["Key"]["SK"] == {"S": "METRICS"}]
    assert len(counter_writes) == 1


def test_executor_reports_only_the_poison_message(seeded):
    event = load_event("ExecutorFunction")
    poison = copy.deepcopy(event["Records"][0])
    poison["messageId"] = "poison-1"
    poison["body"] = "{not json"
    event["Records"].append(poison)
    answer = invoke("ExecutorFunction", event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert wiring.tasks().get(TID).state == "Completed"


def test_converger_runs_a_pass_on_its_scheduled_event(seeded):
    """The sample task was created at 3 ns since the epoch: long past the pending expiry."""
    answer = invoke("ConvergerFunction", load_event("ConvergerFunction"))
    assert (answer["open"], answer["expired"], answer["truncated"]) == (1, 1, False)
    task = wiring.tasks().get(TID)
    assert (task.state, task.failure_reason) == ("Completed", "not started within time limit")
    assert invoke("ConvergerFunction", load_event("ConvergerFunction"))["open"] == 0


@contextlib.contextmanager
def recorder(status: int) -> Iterator[tuple[str, list[tuple[str, str, dict]]]]:
    """A 127.0.0.1 server that keeps every request it gets as (method, path, JSON body) and
    answers `status`; yields its base URL and that list."""
    requests: list[tuple[str, str, dict]] = []

    class Recorder(BaseHTTPRequestHandler):
        def _keep(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append((self.command, self.path, json.loads(body)))
            self.send_response(status)
            self.end_headers()

        do_POST = do_PUT = _keep

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_callback_function_delivers_the_sample_message(seeded, monkeypatch):
    """The sample task, with a callback to a 127.0.0.1 server (allowed as in the local stack):
    Resolving, one POST, deleted; the same message again is dropped, not failed."""
    monkeypatch.setenv("ALLOW_PRIVATE_CALLBACKS", "true")
    wiring.reset()
    with recorder(204) as (base, requests):
        tasks = wiring.tasks()
        tasks.table.update(f"TASK#{TID}", "TASK",
                           set_values={"completion_callback_url": f"{base}/done"},
                           condition="attribute_exists(PK)")
        finish_sample_task()
        answer = invoke("CallbackFunction", load_event("CallbackFunction"))
        assert answer == {"batchItemFailures": []}
        assert [body["task_guid"] for _, _, body in requests] == [TID]
        assert wiring.tasks().get(TID) is None
        again = invoke("CallbackFunction", load_event("CallbackFunction"))
        assert again == {"batchItemFailures": []} and len(requests) == 1


def test_the_stack_cleanup_answers_cloudformation_on_its_sample_event(seeded):
    """Its Delete request, answered to a local stand-in of CloudFormation's pre-signed URL:
    SUCCESS, for the request it was given (process isolation: no Lambdas to delete)."""
    with recorder(200) as (base, requests):
        event = load_event("CleanupFunctionLambdasFunction")
        event["ResponseURL"] = f"{base}/signed?x=1"
        assert invoke("CleanupFunctionLambdasFunction", event) is None
    ((method, path, body),) = requests
    assert (method, path) == ("PUT", "/signed?x=1")
    assert body["Status"] == "SUCCESS" and body["Reason"].startswith("nothing to do")
    assert (body["RequestId"], body["LogicalResourceId"], body["PhysicalResourceId"]) == (
        event["RequestId"], "FunctionLambdas", "taskfn-function-lambdas")


def error_of(answer: dict) -> tuple[int, dict]:
    return answer["statusCode"], json.loads(answer["body"])


def test_no_identity_is_401_and_a_user_token_cannot_mint_tokens(seeded):
    event = load_event("GetTaskFunction")
    event["requestContext"]["authorizer"] = {"lambda": {"user": "", "scope": ""}}
    status, body = error_of(invoke("GetTaskFunction", event))
    assert status == 401 and body["message"]
    event = load_event("CreateTokenFunction")
    event["requestContext"]["authorizer"]["lambda"].update(user="alice", scope="user")
    assert invoke("CreateTokenFunction", event)["statusCode"] == 403


@pytest.mark.parametrize("function_id", ["GetTaskFunction", "GetTaskResultFunction",
                                         "GetFunctionFunction", "DeleteFunctionFunction",
                                         "GetBuildFunction", "GetTaskLogsFunction"])
def test_another_users_ids_are_404(seeded, function_id):
    event = load_event(function_id)
    event["requestContext"]["authorizer"]["lambda"]["user"] = "mallory"
    status, body = error_of(invoke(function_id, event))
    assert status == 404 and "not found" in body["message"]


def test_malformed_and_oversized_bodies_are_4xx(seeded):
    event = load_event("CreateFunctionFunction")
    event["body"] = "{not json"
    assert error_of(invoke("CreateFunctionFunction", event))[0] == 400
    event["body"] = json.dumps({"name": "has spaces!", "lang": "PY"})
    status, body = error_of(invoke("CreateFunctionFunction", event))
    assert status == 400 and "name" in body["detail"]
    event["body"] = json.dumps({"name": "x", "lang": "GO"})
    assert error_of(invoke("CreateFunctionFunction", event))[0] == 400
    event = load_event("CreateTaskFunction")
    event["body"] = "{broken"
    assert error_of(invoke("CreateTaskFunction", event))[0] == 400
    event["body"] = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    event["isBase64Encoded"] = True
    event["headers"]["content-type"] = "text/plain"
    assert error_of(invoke("CreateTaskFunction", event))[0] == 413
    event = load_event("ListTasksFunction")
    event["queryStringParameters"] = {"limit": "zero"}
    assert error_of(invoke("ListTasksFunction", event))[0] == 400
    event["queryStringParameters"] = {"cursor": "garbage"}
    assert error_of(invoke("ListTasksFunction", event))[0] == 400


def test_result_is_404_until_the_task_finishes(seeded):
    status, body = error_of(invoke("GetTaskResultFunction", load_event("GetTaskResultFunction")))
    assert status == 404 and "not finished" in body["message"]
