"""Nodes and platform metrics against moto, through the handlers with their events: a node's
cell token (identified by the authorizer) acts only as its node, on the tasks that node may
run; a disabled node gets no work and convergence fails what still runs on it; the metrics
are counters and heartbeats, read without a scan."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskfn import lifecycle, wiring
from taskfn.errors import InvalidRequest
from taskfn.lifecycle import SECOND_NS
from taskfn.models import Caller, Capabilities, Scope, TaskRecord, now_ns
from taskfn.services.cells import CellService, DesiredTask
from taskfn.services.converger import Converger
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.nodes import NodeService
from taskfn.services.tasks import TaskService
from taskfn.services.tokens import TokenService
from taskfn.settings import get_settings
from tests.handlers.test_events import invoke, load_event

from .helpers import ALICE, BOB

S = SECOND_NS
CODE = "def handler(event, context):\n    return 1\n"


def user(name: str) -> dict[str, str]:
    return {"user": name, "scope": "user", "tokenId": "", "node": "", "shared": ""}


ADMIN = {"user": "ops", "scope": "admin", "tokenId": "", "node": "", "shared": ""}


# --- calling the handlers -----------------------------------------------------------------


def identity(token: str) -> dict[str, str]:
    """What the authorizer passes to the routes for `token`."""
    event = load_event("AuthorizerFunction")
    event["headers"]["authorization"] = f"Bearer {token}"
    return invoke("AuthorizerFunction", event)["context"]


def greencloud(function_id: str, who: dict[str, str], node_hash: str | None = None,
               body: dict | None = None) -> tuple[int, Any]:
    event = load_event(function_id)
    event["requestContext"]["authorizer"]["lambda"] = dict(who)
    if node_hash is not None:
        suffix = "/heartbeat" if function_id == "HeartbeatNodeFunction" else ""
        path = f"/v1/node/{node_hash}{suffix}"
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"hash": node_hash}
    if body is not None:
        event["body"] = json.dumps(body)
    answer = invoke(function_id, event)
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


def cell_call(function_id: str, who: dict[str, str], body: dict) -> tuple[int, dict]:
    event = load_event(function_id)
    event["requestContext"]["authorizer"]["lambda"] = dict(who)
    event["body"] = json.dumps(body)
    answer = invoke(function_id, event)
    return answer["statusCode"], json.loads(answer["body"])


def error_type(answer: tuple[int, dict]) -> tuple[int, str | None]:
    status, body = answer
    return status, (body.get("error") or {}).get("type")


def register(who: dict[str, str], node_hash: str, **body) -> dict[str, str]:
    """A new node; the identity its cell token gets from the authorizer."""
    status, answer = greencloud("RegisterNodeFunction", who, node_hash,
                                {"description": f"node {node_hash}", **body})
    assert status == 201, answer
    assert (answer["hash"], answer["cellId"]) == (node_hash, node_hash)
    return identity(answer["token"])


def start(cell: dict[str, str], guid: str, cell_id: str | None = None) -> tuple[int, dict]:
    return cell_call("CellStartTaskFunction", cell,
                     {"task_guid": guid, "cell_id": cell_id or cell["node"]})


def desire(caller, guid: str, *, domain: str = "d", retries: int = 0) -> None:
    CellService.from_env().desire(caller, DesiredTask(
        task_guid=guid, domain=domain, placement_tags=("gpu",), definition={"log_guid": guid},
        retries=retries))


def task(guid: str) -> TaskRecord:
    return wiring.tasks().get(guid, consistent=True)


def nodes_of(who: dict[str, str]) -> dict[str, dict]:
    status, listed = greencloud("ListNodesFunction", who)
    assert status == 200
    return {node["hash"]: node for node in listed}


# --- a cell token is bound to its node ------------------------------------------------------


def test_the_authorizer_passes_a_node_token_as_its_node_and_a_users_as_not_shared(backend):
    alices = register(user("alice"), "alice-1")
    assert (alices["user"], alices["scope"], alices["node"], alices["shared"]) == (
        "alice", "cell", "alice-1", "")
    shared = register(ADMIN, "shared-1")
    assert (shared["user"], shared["scope"], shared["node"], shared["shared"]) == (
        "ops", "cell", "shared-1", "1")


def test_a_cell_token_acts_only_as_its_own_nodes_cell(backend):
    cell = register(user("alice"), "alice-1")
    register(user("alice"), "alice-2")  # the same owner's other node: still not this token's
    desire(ALICE, "t1")
    status, body = start(cell, "t1", cell_id="alice-2")
    assert (status, body["error"]["type"]) == (403, "Forbidden")
    assert "alice-1" in body["error"]["message"]
    assert task("t1").state == "Pending"
    assert start(cell, "t1") == (200, {"error": None, "should_start": True})
    for function_id, extra in (("CellHeartbeatTaskFunction", {}),
                               ("CellCompleteTaskFunction", {"failed": False, "result": "x"})):
        answer = cell_call(function_id, cell, {"task_guid": "t1", "cell_id": "alice-2", **extra})
        assert error_type(answer) == (403, "Forbidden"), function_id
    stored = task("t1")
    assert (stored.state, stored.cell_id) == ("Running", "alice-1")
    assert cell_call("CellHeartbeatTaskFunction", cell,
                     {"task_guid": "t1", "cell_id": "alice-1"}) == (200, {"error": None})
    assert cell_call("CellCompleteTaskFunction", cell,
                     {"task_guid": "t1", "cell_id": "alice-1", "failed": False,
                      "result": "42"}) == (200, {"error": None})
    assert (task("t1").state, task("t1").result) == ("Completed", "42")


@pytest.mark.parametrize(("function_id", "body"), [
    ("CellStartTaskFunction", {"task_guid": "t1", "cell_id": "alice-1"}),
    ("CellHeartbeatTaskFunction", {"task_guid": "t1", "cell_id": "alice-1"}),
    ("CellCompleteTaskFunction", {"task_guid": "t1", "cell_id": "alice-1", "failed": False}),
    ("CellFailTaskFunction", {"task_guid": "t1", "failure_reason": "no"}),
    ("CellRejectTaskFunction", {"task_guid": "t1", "rejection_reason": "no"}),
])
def test_a_user_token_on_a_cell_route_is_403(backend, function_id, body):
    register(user("alice"), "alice-1")
    token = TokenService.from_env().create("alice", "user").token
    desire(ALICE, "t1")
    assert error_type(cell_call(function_id, identity(token), body)) == (403, "Forbidden")
    assert task("t1").state == "Pending"


def test_cell_tokens_come_only_from_node_registration(backend):
    event = load_event("CreateTokenFunction")
    event["requestContext"]["authorizer"]["lambda"] = dict(ADMIN)
    event["body"] = json.dumps({"user": "alice", "scope": "cell"})
    answer = invoke("CreateTokenFunction", event)
    assert answer["statusCode"] == 400, answer
    assert "node" in json.loads(answer["body"])["message"]
    with pytest.raises(InvalidRequest):
        TokenService.from_env().create("alice", Scope.CELL)
    with pytest.raises(InvalidRequest):  # and no other scope is bound to a node
        TokenService.from_env().create("alice", Scope.USER, node="alice-1")
    # A user or admin token made the ordinary way still works.
    event["body"] = json.dumps({"user": "alice", "scope": "user"})
    assert invoke("CreateTokenFunction", event)["statusCode"] == 201


# --- a user's node acts on its owner's tasks; a shared node on anyone's --------------------


def test_a_users_node_sees_only_its_owners_tasks(backend):
    cell = register(user("alice"), "alice-1")
    desire(ALICE, "a1")
    desire(BOB, "b1")
    desire(ALICE, "a2")
    _, listed = cell_call("CellListTasksFunction", cell, {"domain": "d"})
    assert [t["task_guid"] for t in listed["tasks"]] == ["a1", "a2"]
    assert error_type(cell_call("CellGetTaskFunction", cell, {"task_guid": "b1"})) == (
        200, "ResourceNotFound")
    service = CellService.from_env()  # pending work has no route: the service, as routed
    as_node = Caller(user="alice", scope=Scope.CELL, node="alice-1")
    pending, _ = service.pending(as_node, "d", limit=10)
    assert [t.task_guid for t in pending] == ["a1", "a2"]
    # A page holding only another owner's tasks is empty but says where to go on.
    first, cursor = service.pending(as_node, "d", limit=1)
    assert [t.task_guid for t in first] == ["a1"]
    seen = [t.task_guid for t in first]
    while cursor:
        page, cursor = service.pending(as_node, "d", limit=1, cursor=cursor)
        seen += [t.task_guid for t in page]
    assert seen == ["a1", "a2"]


@pytest.mark.parametrize(("function_id", "body"), [
    ("CellStartTaskFunction", {"task_guid": "b1", "cell_id": "alice-1"}),
    ("CellFailTaskFunction", {"task_guid": "b1", "failure_reason": "mine now"}),
    ("CellRejectTaskFunction", {"task_guid": "b1", "rejection_reason": "not mine"}),
])
def test_a_users_node_cannot_act_on_another_owners_pending_task(backend, function_id, body):
    cell = register(user("alice"), "alice-1")
    desire(BOB, "b1")
    before = task("b1").model_dump()
    assert error_type(cell_call(function_id, cell, body)) == (200, "ResourceNotFound")
    assert task("b1").model_dump() == before


@pytest.mark.parametrize(("function_id", "body"), [
    ("CellCompleteTaskFunction", {"task_guid": "b1", "cell_id": "alice-1", "failed": False,
                                  "result": "forged"}),
    ("CellCompleteTaskFunction", {"task_guid": "b1", "cell_id": "alice-1", "failed": True,
                                  "failure_reason": "forged"}),
    ("CellHeartbeatTaskFunction", {"task_guid": "b1", "cell_id": "alice-1"}),
    ("CellFailTaskFunction", {"task_guid": "b1", "failure_reason": "forged"}),
])
def test_a_users_node_cannot_finish_another_owners_task_even_on_its_cell(backend, function_id,
                                                                          body):
    """Bob's task Running with alice's node's cell id (as a shared node of that name might
    have left it): her token's right is her own tasks, not whatever runs under its name."""
    cell = register(user("alice"), "alice-1")
    desire(BOB, "b1", retries=1)
    wiring.tasks().apply("b1", lifecycle.start("alice-1", now_ns()))
    before = task("b1").model_dump()
    assert error_type(cell_call(function_id, cell, body)) == (200, "ResourceNotFound")
    assert task("b1").model_dump() == before


def test_a_shared_node_acts_on_every_owners_tasks(backend):
    cell = register(ADMIN, "shared-1")
    for caller, guid in ((ALICE, "a1"), (BOB, "b1"), (BOB, "b2"), (ALICE, "a2")):
        desire(caller, guid)
    _, listed = cell_call("CellListTasksFunction", cell, {"domain": "d"})
    assert {t["task_guid"] for t in listed["tasks"]} == {"a1", "b1", "b2", "a2"}
    assert start(cell, "a1") == (200, {"error": None, "should_start": True})
    assert start(cell, "b1") == (200, {"error": None, "should_start": True})
    assert cell_call("CellCompleteTaskFunction", cell, {
        "task_guid": "b1", "cell_id": "shared-1", "failed": False, "result": "ok"}) == (
        200, {"error": None})
    assert cell_call("CellRejectTaskFunction", cell, {
        "task_guid": "b2", "rejection_reason": "busy"}) == (200, {"error": None})
    assert cell_call("CellFailTaskFunction", cell, {
        "task_guid": "a2", "failure_reason": "broken"}) == (200, {"error": None})
    assert (task("a1").state, task("a1").cell_id) == ("Running", "shared-1")
    assert (task("b1").state, task("b1").result) == ("Completed", "ok")
    assert (task("b2").state, task("b2").rejection_count) == ("Pending", 1)
    assert (task("a2").state, task("a2").failure_reason) == ("Completed", "broken")


# --- disabled nodes ---------------------------------------------------------------------------


def test_a_disabled_node_gets_no_work_until_restored(backend):
    alice = user("alice")
    cell = register(alice, "alice-1")
    desire(ALICE, "t1")
    assert greencloud("HeartbeatNodeFunction", cell, "alice-1", {"running": 0})[0] == 204
    assert greencloud("DisableNodeFunction", alice, "alice-1") == (204, None)
    assert nodes_of(alice)["alice-1"]["disabled"] is True
    status, body = start(cell, "t1")
    assert (status, body["error"]["type"]) == (403, "Forbidden")
    assert "disabled" in body["error"]["message"]
    assert task("t1").state == "Pending"
    for function_id, extra in (("CellRejectTaskFunction", {"rejection_reason": "x"}),
                               ("CellFailTaskFunction", {"failure_reason": "x"})):
        answer = cell_call(function_id, cell, {"task_guid": "t1", **extra})
        assert error_type(answer) == (403, "Forbidden"), function_id
    _, listed = cell_call("CellListTasksFunction", cell, {"domain": "d"})
    assert listed["tasks"][0]["state"] == "Pending"  # reading is not work: still allowed
    status, body = greencloud("HeartbeatNodeFunction", cell, "alice-1", {"running": 0})
    assert status == 403 and "disabled" in body["message"]
    assert nodes_of(alice)["alice-1"]["available"] is False
    status, restored = greencloud("RestoreNodeFunction", alice, "alice-1")
    assert status == 200
    assert (restored["hash"], restored["disabled"]) == ("alice-1", False)
    assert start(cell, "t1") == (200, {"error": None, "should_start": True})
    assert greencloud("HeartbeatNodeFunction", cell, "alice-1", {"running": 1})[0] == 204


def test_convergence_fails_what_runs_on_a_disabled_node_and_leaves_enabled_ones(backend):
    alice = user("alice")
    off, on = register(alice, "alice-off"), register(alice, "alice-on")
    desire(ALICE, "t-off")
    desire(ALICE, "t-retry", retries=1)
    desire(ALICE, "t-on")
    assert start(off, "t-off")[1]["should_start"] is True
    assert start(off, "t-retry")[1]["should_start"] is True
    assert start(on, "t-on")[1]["should_start"] is True
    at = now_ns()
    before = Converger(wiring.tasks(), wiring.task_queue(), get_settings(), now=lambda: at).run()
    assert (before.node_disabled, before.cell_lost, before.retried) == (0, 0, 0)
    assert greencloud("DisableNodeFunction", alice, "alice-off")[0] == 204
    report = Converger(wiring.tasks(), wiring.task_queue(), get_settings(),
                       now=lambda: at).run()
    assert (report.node_disabled, report.retried, report.cell_lost) == (1, 1, 0)
    failed = task("t-off")
    assert (failed.state, failed.failed, failed.failure_reason) == (
        "Completed", True, "node alice-off was disabled before completion")
    retried = task("t-retry")
    assert (retried.state, retried.cell_id, retried.retried) == ("Pending", "", 1)
    assert retried.attempts[-1]["failure_reason"] == (
        "node alice-off was disabled before completion")
    assert retried.attempts[-1]["cell_id"] == "alice-off"
    kept = task("t-on")
    assert (kept.state, kept.cell_id) == ("Running", "alice-on")
    again = Converger(wiring.tasks(), wiring.task_queue(), get_settings(), now=lambda: at).run()
    assert (again.node_disabled, again.retried) == (0, 0)


# --- privileged tasks ------------------------------------------------------------------------


def put_task(guid: str, *, privileged: bool, owner: str = "alice") -> None:
    at = now_ns()
    assert wiring.tasks().put_new(TaskRecord(
        task_guid=guid, owner=owner, domain="d", placement_tags=["gpu"],
        task_definition={"log_guid": guid}, capabilities=Capabilities(privileged=privileged),
        created_at=at, updated_at=at))


def test_a_privileged_task_starts_only_on_a_node_that_offers_privileged(backend):
    plain = register(user("alice"), "alice-plain")
    shared_plain = register(ADMIN, "shared-plain")
    able = register(user("alice"), "alice-root", privileged=True)
    put_task("p1", privileged=True)
    put_task("u1", privileged=False)
    for cell in (plain, shared_plain):
        assert error_type(start(cell, "p1")) == (200, "InvalidRequest")
        assert task("p1").state == "Pending"
    assert nodes_of(user("alice"))["alice-root"]["privileged"] is True
    assert start(plain, "u1") == (200, {"error": None, "should_start": True})
    assert start(able, "p1") == (200, {"error": None, "should_start": True})
    assert (task("p1").state, task("p1").cell_id) == ("Running", "alice-root")


def test_a_privileged_function_makes_privileged_cell_api_tasks(backend):
    """Desired with a function whose capabilities are privileged: the task carries them."""
    function = FunctionService.from_env().create(ALICE, NewFunction(name="f", source=CODE))
    wiring.table().update(f"FUNC#{function.id}", "FUNC", set_values={
        "capabilities": Capabilities(privileged=True).model_dump()},
        condition="attribute_exists(PK)")
    CellService.from_env().desire(ALICE, DesiredTask(
        task_guid="pf", domain="d", placement_tags=("gpu",), function_id=function.id))
    assert task("pf").capabilities.privileged is True
    plain = register(user("alice"), "alice-plain")
    assert error_type(start(plain, "pf")) == (200, "InvalidRequest")
    able = register(user("alice"), "alice-root", privileged=True)
    assert start(able, "pf")[1]["should_start"] is True


def test_privileged_must_be_a_boolean(backend):
    status, body = greencloud("RegisterNodeFunction", user("alice"), "n1", {"privileged": "yes"})
    assert status == 400 and "privileged" in body["message"]
    assert nodes_of(user("alice")) == {}


# --- node hashes -------------------------------------------------------------------------------


@pytest.mark.parametrize("node_hash", ["list", "executor-x", "a b", "", "a/b", "-x", "x" * 129])
def test_a_bad_node_hash_is_invalid(backend, node_hash):
    with pytest.raises(InvalidRequest):
        NodeService.from_env().register(ALICE, node_hash, {})
    assert wiring.nodes().list("alice") == []


@pytest.mark.parametrize("node_hash", ["list", "executor-x", "a b"])
def test_a_bad_node_hash_is_400_through_the_route(backend, node_hash):
    status, body = greencloud("RegisterNodeFunction", user("alice"), node_hash, {})
    assert status == 400 and body["message"] == "invalid node hash", body
    assert nodes_of(user("alice")) == {}


def test_a_taken_hash_is_409_and_another_owners_node_is_404(backend):
    alice, bob = user("alice"), user("bob")
    register(alice, "west-1")
    for who in (alice, bob, ADMIN):
        status, body = greencloud("RegisterNodeFunction", who, "west-1", {})
        assert status == 409 and body["message"], who
    for function_id in ("DisableNodeFunction", "RestoreNodeFunction"):
        for node_hash in ("west-1", "unknown-9"):
            status, body = greencloud(function_id, bob, node_hash)
            assert status == 404 and "not found" in body["message"], (function_id, node_hash)
        assert greencloud(function_id, alice, "unknown-9")[0] == 404
    assert nodes_of(bob) == {}
    assert nodes_of(alice)["west-1"]["disabled"] is False  # bob's DELETE changed nothing
    assert greencloud("DisableNodeFunction", alice, "west-1")[0] == 204
    assert greencloud("RestoreNodeFunction", bob, "west-1")[0] == 404
    assert nodes_of(alice)["west-1"]["disabled"] is True


# --- the node list ----------------------------------------------------------------------------


def test_a_node_is_available_after_a_fresh_heartbeat_and_busy_when_it_runs_tasks(backend,
                                                                                 calls):
    alice = user("alice")
    cell = register(alice, "n1")
    register(alice, "n2")
    register(user("bob"), "bob-1")
    calls.clear()
    listed = nodes_of(alice)
    assert "Scan" not in [operation for operation, _ in calls]
    assert list(listed) == ["n1", "n2"]
    assert {k: listed["n1"][k] for k in ("description", "available", "disabled", "busy",
                                         "lastHeartbeat")} == {
        "description": "node n1", "available": False, "disabled": False, "busy": False,
        "lastHeartbeat": None}
    assert greencloud("HeartbeatNodeFunction", cell, "n1", {"running": 0}) == (204, None)
    n1 = nodes_of(alice)["n1"]
    assert (n1["available"], n1["busy"], n1["running"]) == (True, False, 0)
    assert n1["lastHeartbeat"]
    assert nodes_of(alice)["n2"]["available"] is False
    assert greencloud("HeartbeatNodeFunction", cell, "n1", {"running": 2}) == (204, None)
    n1 = nodes_of(alice)["n1"]
    assert (n1["available"], n1["busy"], n1["running"]) == (True, True, 2)
    # A heartbeat older than the cell timeout: not available (nor busy) any more.
    timeout_ns = int(get_settings().cell_timeout_s * S)
    assert wiring.nodes().heartbeat("n1", now_ns() - timeout_ns - S, 2)
    n1 = nodes_of(alice)["n1"]
    assert (n1["available"], n1["busy"]) == (False, False)
    assert set(nodes_of(user("bob"))) == {"bob-1"}


def test_availability_ends_exactly_at_the_cell_timeout(backend):
    from taskfn.adapters.greencloud_nodes import node_view

    settings = get_settings()
    node = wiring.nodes()
    register(user("alice"), "n1")
    assert node.heartbeat("n1", 1_000 * S, 1)
    record = node.get("n1", consistent=True)
    limit = 1_000 * S + int(settings.cell_timeout_s * S)
    assert node_view(record, limit, settings)["available"] is True
    assert node_view(record, limit, settings)["busy"] is True
    assert node_view(record, limit + 1, settings)["available"] is False
    disabled = record.model_copy(update={"disabled": True})
    assert node_view(disabled, 1_000 * S, settings)["available"] is False


@pytest.mark.parametrize("running", [-1, "2", True, 10_001, 1.5])
def test_a_bad_running_count_is_400(backend, running):
    cell = register(user("alice"), "n1")
    status, body = greencloud("HeartbeatNodeFunction", cell, "n1", {"running": running})
    assert status == 400 and "running" in body["message"]
    assert nodes_of(user("alice"))["n1"]["lastHeartbeat"] is None


def test_only_the_nodes_own_cell_token_heartbeats_it(backend):
    alice = user("alice")
    cell = register(alice, "n1")
    register(alice, "n2")
    status, body = greencloud("HeartbeatNodeFunction", cell, "n2", {"running": 0})
    assert status == 403 and body["message"]
    assert greencloud("HeartbeatNodeFunction", alice, "n1", {"running": 0})[0] == 403
    assert greencloud("HeartbeatNodeFunction", ADMIN, "n1", {"running": 0})[0] == 403
    assert nodes_of(alice)["n2"]["lastHeartbeat"] is None


# --- platform metrics ---------------------------------------------------------------------------


def new_task(caller, function_id: str) -> str:
    return TaskService.from_env().create(caller, function_id, body={"n": 1}, query={},
                                         size=8).task_guid


METRIC_FIELDS = {"pendingTasks", "pendingBuilds", "activeNodes", "freeNodes", "busyNodes",
                 "todayTasks", "completedTasks"}


def metrics(who: dict[str, str]) -> dict[str, int]:
    status, body = greencloud("GetPlatformMetricsFunction", who)
    assert status == 200 and set(body) == METRIC_FIELDS, body
    return body


def test_platform_metrics_add_up_the_callers_functions_and_nodes(backend, calls):
    functions = FunctionService.from_env()
    f1 = functions.create(ALICE, NewFunction(name="f1", source=CODE)).id
    f2 = functions.create(ALICE, NewFunction(name="f2", source=CODE)).id
    fb = functions.create(BOB, NewFunction(name="fb", source=CODE)).id
    on_f1 = [new_task(ALICE, f1) for _ in range(3)]
    on_f2 = [new_task(ALICE, f2) for _ in range(2)]
    new_task(BOB, fb)
    tasks = wiring.tasks()
    tasks.apply(on_f1[0], lifecycle.cancel(now_ns()))
    tasks.apply(on_f2[0], lifecycle.start("cell-x", now_ns()))
    tasks.apply(on_f2[0], lifecycle.complete("cell-x", now_ns(), failed=False))
    alice = user("alice")
    idle, busy = register(alice, "idle"), register(alice, "busy")
    register(alice, "silent")  # never heartbeats: not active
    gone = register(alice, "gone")
    assert greencloud("HeartbeatNodeFunction", idle, "idle", {"running": 0})[0] == 204
    assert greencloud("HeartbeatNodeFunction", busy, "busy", {"running": 3})[0] == 204
    assert greencloud("HeartbeatNodeFunction", gone, "gone", {"running": 1})[0] == 204
    assert greencloud("DisableNodeFunction", alice, "gone")[0] == 204
    calls.clear()
    assert metrics(alice) == {"pendingTasks": 3, "pendingBuilds": 0, "activeNodes": 2,
                              "freeNodes": 1, "busyNodes": 1, "todayTasks": 5,
                              "completedTasks": 2}
    operations = [operation for operation, _ in calls]
    assert "Scan" not in operations and "Query" in operations, operations
    assert metrics(user("bob")) == {"pendingTasks": 1, "pendingBuilds": 0, "activeNodes": 0,
                                    "freeNodes": 0, "busyNodes": 0, "todayTasks": 1,
                                    "completedTasks": 0}
    # Bob's work moves none of alice's numbers.
    new_task(BOB, fb)
    assert metrics(alice)["todayTasks"] == 5 and metrics(alice)["pendingTasks"] == 3
    assert metrics(user("carol")) == dict.fromkeys(METRIC_FIELDS, 0)


def test_pending_builds_count_a_build_while_it_runs(backend, monkeypatch):
    import taskfn.services.builds as builds

    seen: list[tuple[int, int]] = []
    check = builds.check_zip

    def observed(archive):
        counters = wiring.owner_metrics()
        seen.append((counters.read("alice", now_ns())["pendingBuilds"],
                     counters.read("bob", now_ns())["pendingBuilds"]))
        return check(archive)

    monkeypatch.setattr(builds, "check_zip", observed)
    FunctionService.from_env().create(ALICE, NewFunction(name="f", source=CODE))
    assert seen == [(1, 0)]
    assert metrics(user("alice"))["pendingBuilds"] == 0

    def broken(archive):
        raise RuntimeError("the build died")

    monkeypatch.setattr(builds, "check_zip", broken)
    with pytest.raises(RuntimeError):
        FunctionService.from_env().create(ALICE, NewFunction(name="g", source=CODE))
    assert metrics(user("alice"))["pendingBuilds"] == 0  # a failed build is counted off too
    wiring.owner_metrics().building("alice", 2)
    assert metrics(user("alice"))["pendingBuilds"] == 2
    assert metrics(user("bob"))["pendingBuilds"] == 0
