"""The Cell API's handlers invoked with their events/bbs files, against moto: each answers
HTTP 200 with BBS's body, errors inside it; only a missing identity (401), a scope that does
not allow the route (403) and an internal fault (500) answer otherwise."""

from __future__ import annotations

import json

import pytest

from taskfn import lifecycle, wiring
from taskfn.models import FunctionRecord, NodeRecord
from taskfn.services.builds import BuildService
from taskfn.services.cells import CellService, DesiredTask
from tests.handlers.test_events import FID, TEMPLATE, _modules, invoke, load_event
from tests.integration.helpers import ALICE

GUID = "sample-task-1"


@pytest.fixture
def sample(backend):
    """What the sample events name: alice's function with code, her task waiting in domain
    "sample" for a cell tagged "gpu", and the shared node "cell-1" the cell events act as."""
    wiring.nodes().put_new(NodeRecord(hash="cell-1", owner="ops", shared=True, created_at=1))
    function = FunctionRecord(id=FID, owner="alice", name="hello", created_at=1)
    wiring.functions().put_new(function)
    BuildService.from_env().create_from_source(
        ALICE, function, "def handler(event, context):\n    return {'got': event['body']}\n")
    CellService.from_env().desire(ALICE, DesiredTask(
        task_guid=GUID, domain="sample", placement_tags=("gpu",), definition={"log_guid": "l"}))


def call(function_id: str, body: dict | str | None = None, **identity) -> tuple[int, dict]:
    event = load_event(function_id)
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if identity:
        event["requestContext"]["authorizer"]["lambda"].update(identity)
    answer = invoke(function_id, event)
    assert answer["headers"]["Content-Type"] == "application/json"
    return answer["statusCode"], json.loads(answer["body"])


def task() -> dict:
    stored = wiring.tasks().get(GUID)
    return stored.model_dump() if stored else {}


def to(*steps: lifecycle.Transition) -> None:
    for step in steps:
        wiring.tasks().apply(GUID, step)


COMPLETED = (lifecycle.start("cell-1", 2), lifecycle.complete("cell-1", 3, failed=False))
RESOLVING = (*COMPLETED, lifecycle.resolving(4))
# function id → (transitions before the sample event, what the stored task is after it)
SAMPLES = {
    "CellDesireTaskFunction": ((), None),
    "CellListTasksFunction": ((), {"state": "Pending"}),
    "CellGetTaskFunction": ((), {"state": "Pending"}),
    "CellCancelTaskFunction": ((), {"state": "Completed", "failure_reason": "task was cancelled"}),
    "CellResolvingTaskFunction": (COMPLETED, {"state": "Resolving"}),
    "CellDeleteTaskFunction": (RESOLVING, {}),
    "CellStartTaskFunction": ((), {"state": "Running", "cell_id": "cell-1"}),
    "CellHeartbeatTaskFunction": ((lifecycle.start("cell-1", 2),),
                                  {"state": "Running", "cell_id": "cell-1"}),
    "CellFailTaskFunction": ((), {"state": "Completed", "failure_reason": "out of disk"}),
    "CellRejectTaskFunction": ((), {"state": "Pending", "rejection_count": 1,
                                    "rejection_reason": "not enough memory"}),
    "CellCompleteTaskFunction": ((lifecycle.start("cell-1", 2),),
                                 {"state": "Completed", "result": "42", "failed": False}),
}


def test_every_cell_route_has_a_sample():
    routes = {r.function_id for r in TEMPLATE.routes if r.path.startswith("/v1/tasks/")}
    assert routes == set(SAMPLES)


@pytest.mark.parametrize("function_id", sorted(SAMPLES))
def test_cell_handler_answers_its_sample_event(sample, function_id):
    before, after = SAMPLES[function_id]
    to(*before)
    status, body = call(function_id)
    assert status == 200 and body["error"] is None, body
    if after is not None:
        stored = task()
        assert {k: stored.get(k) for k in after} == after
    if function_id == "CellStartTaskFunction":
        assert body["should_start"] is True


def test_desire_sample_runs_the_function_in_the_built_in_executor(sample):
    assert call("CellDesireTaskFunction") == (200, {"error": None})
    desired = wiring.tasks().get("sample-desired-1")
    assert desired.function_id == FID and desired.input == {"body": {"n": 1}, "query": {}}
    message = load_event("ExecutorFunction")
    message["Records"][0]["body"] = json.dumps({"taskId": "sample-desired-1"})
    assert invoke("ExecutorFunction", message) == {"batchItemFailures": []}
    _, body = call("CellGetTaskFunction", {"task_guid": "sample-desired-1"})
    got = body["task"]
    assert (got["state"], got["failed"], json.loads(got["result"])) == (
        "Completed", False, {"got": {"n": 1}})
    assert got["annotation"] == "made by the sample event" and got["log_guid"] == "sample"
    assert got["domain"] == "sample" and got["placement_tags"] == []


def test_get_and_list_answer_bbs_tasks(sample):
    _, body = call("CellGetTaskFunction")
    view = body["task"]
    assert view["task_guid"] == GUID and view["log_guid"] == "l"
    assert set(view) >= {"task_guid", "domain", "created_at", "updated_at", "first_completed_at",
                         "state", "cell_id", "result", "failed", "failure_reason",
                         "rejection_count", "rejection_reason", "placement_tags",
                         "completion_callback_url", "annotation"}
    assert view["created_at"] > 10**18  # nanoseconds
    _, listed = call("CellListTasksFunction")
    assert listed["tasks"] == [view]
    _, as_cell = call("CellListTasksFunction", {"domain": "sample", "cell_id": "cell-9"},
                      user="cell-1", scope="cell")
    assert as_cell == {"error": None, "tasks": []}


AS_ADMIN = {"user": "root", "scope": "admin", "node": "", "shared": ""}


def bbs_error(status_body: tuple[int, dict]) -> tuple[int, str]:
    status, body = status_body
    return status, body["error"]["type"]


@pytest.mark.parametrize("body", [
    "{not json",
    "[1, 2]",
    # Under the body limit as sent, over the stored definition's limit as kept.
    '{"task_guid":"g","domain":"d","task_definition":{"placement_tags":["a"],"x":['
    + ",".join(["1e15"] * 20000) + "]}}",
    {"task_guid": "has spaces", "domain": "d", "task_definition": {"placement_tags": ["a"]}},
    {"task_guid": "g", "task_definition": {"placement_tags": ["a"]}},
    {"task_guid": "g", "domain": "d"},
    {"task_guid": "g", "domain": "d", "task_definition": {}},
    {"task_guid": "g", "domain": "d",
     "task_definition": {"function_id": "6560f1a0ffffffffffffffff"}},
    {"task_guid": "g", "domain": "d",
     "task_definition": {"placement_tags": ["a"], "annotation": "a" * (10 * 1024 + 1)}},
    {"task_guid": "g", "domain": "d",
     "task_definition": {"placement_tags": ["a"], "image_username": "u"}},
    {"task_guid": "g", "domain": "d",
     "task_definition": {"placement_tags": ["a"], "completion_callback_url": "ftp://x"}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": "a"}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "cpu_weight": 101}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "env": "not a list"}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "x": json.loads("[" * 64 + "]" * 64)}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "x": "y" * (200 * 1024)}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "retries": 9}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "retries": -1}},
    {"task_guid": "g", "domain": "d", "task_definition": {"placement_tags": ["a"],
                                                          "source": 42}},
])
def test_a_bad_desire_is_200_invalid_request(sample, body):
    assert bbs_error(call("CellDesireTaskFunction", body)) == (200, "InvalidRequest")
    assert wiring.tasks().get("g") is None


@pytest.mark.parametrize(("function_id", "body"), [
    ("CellStartTaskFunction", {"task_guid": GUID}),
    ("CellStartTaskFunction", {"task_guid": "a/b", "cell_id": "c"}),
    ("CellCompleteTaskFunction", {"task_guid": GUID, "failed": True}),
    ("CellFailTaskFunction", {"task_guid": GUID}),
    ("CellFailTaskFunction", {"task_guid": GUID, "failure_reason": ""}),
    ("CellRejectTaskFunction", {"task_guid": GUID, "rejection_reason": 5}),
    ("CellGetTaskFunction", {}),
    ("CellListTasksFunction", {}),
    ("CellListTasksFunction", {"cell_id": "cell-1"}),
    ("CellCancelTaskFunction", {"task_guid": ""}),
])
def test_missing_or_invalid_fields_are_200_invalid_request(sample, function_id, body):
    assert bbs_error(call(function_id, body)) == (200, "InvalidRequest")
    assert task()["state"] == "Pending"


def test_state_machine_errors_are_200_with_bbs_types(sample):
    """As BBS answers them; acting as another cell takes an admin (a node's token is only
    its own node's cell: tests/integration/test_nodes.py)."""
    assert bbs_error(call("CellDesireTaskFunction", {
        "task_guid": GUID, "domain": "x", "task_definition": {"placement_tags": ["a"]}})) == (
        200, "ResourceExists")
    assert call("CellStartTaskFunction")[1] == {"error": None, "should_start": True}
    assert call("CellStartTaskFunction")[1] == {"error": None, "should_start": False}
    assert bbs_error(call("CellStartTaskFunction", {"task_guid": GUID, "cell_id": "cell-2"},
                              **AS_ADMIN)) == (
        200, "InvalidStateTransition")
    status, body = call("CellCompleteTaskFunction", {"task_guid": GUID, "cell_id": "cell-2"},
                        **AS_ADMIN)
    assert (status, body["error"]) == (200, {"type": "RunningOnDifferentCell",
                                             "message": "Running on cell cell-1 not cell-2"})
    assert bbs_error(call("CellDeleteTaskFunction")) == (200, "InvalidStateTransition")
    assert call("CellCompleteTaskFunction")[1] == {"error": None}
    assert bbs_error(call("CellRejectTaskFunction")) == (200, "InvalidRequest")
    assert bbs_error(call("CellStartTaskFunction", {"task_guid": "nope", "cell_id": "cell-1"})) == (
        200, "ResourceNotFound")


def test_a_heartbeat_refreshes_a_task_running_on_its_cell_and_errors_otherwise(sample):
    """The heartbeat route answers BBS's errors when the task is not Running on the caller's
    cell; that error is what tells an external cell to stop the task."""
    assert bbs_error(call("CellHeartbeatTaskFunction")) == (200, "InvalidStateTransition")
    to(lifecycle.start("cell-1", 2))
    assert call("CellHeartbeatTaskFunction") == (200, {"error": None})
    assert task()["updated_at"] > 2
    status, body = call("CellHeartbeatTaskFunction", {"task_guid": GUID, "cell_id": "cell-2"},
                        **AS_ADMIN)
    assert (status, body["error"]) == (200, {"type": "RunningOnDifferentCell",
                                             "message": "Running on cell cell-1 not cell-2"})
    assert bbs_error(call("CellHeartbeatTaskFunction", {"task_guid": "nope",
                                                        "cell_id": "cell-1"})) == (
        200, "ResourceNotFound")
    assert bbs_error(call("CellHeartbeatTaskFunction", {"task_guid": GUID})) == (
        200, "InvalidRequest")
    assert call("CellCancelTaskFunction")[1] == {"error": None}
    status, body = call("CellHeartbeatTaskFunction")
    assert (status, body["error"]["type"]) == (200, "InvalidStateTransition")
    assert "from Completed" in body["error"]["message"]


def test_another_users_guid_is_200_resource_not_found(sample):
    for function_id in ("CellGetTaskFunction", "CellCancelTaskFunction",
                        "CellResolvingTaskFunction", "CellDeleteTaskFunction"):
        assert bbs_error(call(function_id, user="mallory")) == (200, "ResourceNotFound")
    _, listed = call("CellListTasksFunction", user="mallory")
    assert listed == {"error": None, "tasks": []}
    assert task()["state"] == "Pending"


@pytest.mark.parametrize("function_id", ["CellStartTaskFunction", "CellCompleteTaskFunction",
                                         "CellFailTaskFunction", "CellRejectTaskFunction",
                                         "CellHeartbeatTaskFunction"])
def test_cell_routes_need_a_cell_or_admin_token(sample, function_id):
    assert bbs_error(call(function_id, user="alice", scope="user")) == (403, "Forbidden")
    status, _ = call(function_id, user="root", scope="admin")
    assert status == 200


@pytest.mark.parametrize("function_id", ["CellDesireTaskFunction", "CellCancelTaskFunction",
                                         "CellResolvingTaskFunction", "CellDeleteTaskFunction"])
def test_client_routes_refuse_a_cell_token(sample, function_id):
    assert bbs_error(call(function_id, user="cell-1", scope="cell")) == (403, "Forbidden")


def test_no_identity_is_401_in_the_bbs_shape(sample):
    status, body = call("CellGetTaskFunction", user="", scope="")
    assert status == 401 and body["error"]["type"] == "Unauthorized"


def test_an_internal_fault_is_500_unknown_error(sample, monkeypatch):
    call("CellGetTaskFunction")  # loads the handler module
    module = _modules["CellGetTaskFunction"]

    def broken(*args, **kwargs):
        raise RuntimeError("the table is on fire")

    monkeypatch.setattr(module.cells, "get", broken)
    status, body = call("CellGetTaskFunction")
    assert status == 500
    assert body == {"error": {"type": "UnknownError", "message": "internal error"}}


def test_a_callback_url_is_kept_with_a_lower_case_scheme_for_the_stream_filter(sample):
    body = {"task_guid": "upper", "domain": "d", "task_definition": {
        "placement_tags": ["a"], "completion_callback_url": "HTTPS://Example.com/Done?x=Y"}}
    assert call("CellDesireTaskFunction", body) == (200, {"error": None})
    assert wiring.tasks().get("upper").completion_callback_url == "https://Example.com/Done?x=Y"
