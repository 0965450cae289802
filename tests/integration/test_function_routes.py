"""Functions' tags, PATCH, togglePause, capabilities and metrics at the service level, against
moto: the tag filter goes through the tag's index (recorded: no Scan, no read of untagged
functions), memberships stay right under racing PATCHes, and another owner's everything is
404."""

from __future__ import annotations

import json
import threading

import boto3
import pytest

from taskfn import aws, lifecycle, wiring
from taskfn.adapters import greencloud
from taskfn.errors import Conflict, InvalidRequest, NotFound
from taskfn.models import now_ns
from taskfn.services.builds import BuildService
from taskfn.services.functions import FunctionPatch, FunctionService, NewFunction
from taskfn.services.holds import HoldService
from taskfn.services.tags import NewTag, TagService
from taskfn.services.tasks import TaskService
from taskfn.stores.lambdas import FunctionLambdas
from taskfn.stores.table import time_key

from .helpers import ALICE, BOB, make_zip

CODE = "def handler(event, context):\n    return 1\n"


def tag(caller=ALICE, name: str = "t") -> str:
    return TagService.from_env().create(caller, NewTag(name)).id


def function(caller=ALICE, *, tags: tuple[str, ...] = (), code: str | None = CODE,
             name: str = "f") -> str:
    return FunctionService.from_env().create(
        caller, NewFunction(name=name, tags=tags, source=code)).id


def listed(tag_id: str | None = None, *, limit: int = 100, caller=ALICE) -> list[str]:
    page = FunctionService.from_env().page(caller, limit=limit, cursor=None, tag=tag_id)
    return [record.id for record in page.functions]


def memberships(function_id: str) -> list[str]:
    return sorted(wiring.table().get(f"FUNC#{function_id}", f"TAG#{t}")["tag_id"]
                  for t in FunctionService.from_env().memberships.of_function(function_id))


# --- tags on functions ---------------------------------------------------------------------


def test_a_function_s_tags_must_be_the_caller_s(backend):
    mine, bobs = tag(), tag(BOB)
    for wanted in ((bobs,), (mine, "6560f1a0ffffffffffffffff"), ("not-an-id",)):
        with pytest.raises(InvalidRequest, match="unknown tag") as refused:
            function(tags=wanted)
        assert wanted[-1] in refused.value.message
    with pytest.raises(InvalidRequest):
        greencloud.parse_new_function({"name": "f", "tag": [mine] * 21})
    assert listed() == []  # nothing written for a refused create
    created = function(tags=(mine, mine))
    assert FunctionService.from_env().get(ALICE, created).tags == [mine]


def test_views_show_tags_as_objects_and_a_deleted_tag_disappears(backend):
    tags = TagService.from_env()
    red = tags.create(ALICE, NewTag("red", "#FF0000"))
    blue = tags.create(ALICE, NewTag("blue", "#0000ff"))
    function_id = function(tags=(blue.id, red.id))
    functions = FunctionService.from_env()
    detail = functions.detail(ALICE, function_id)
    view = greencloud.function_view(detail.function, tags=detail.tags, metrics=detail.metrics)
    assert view["tags"] == [{"id": blue.id, "name": "blue", "color": "#0000ff"},
                            {"id": red.id, "name": "red", "color": "#ff0000"}]
    tags.update(ALICE, red.id, name="crimson")
    tags.delete(ALICE, blue.id)
    page = functions.page(ALICE, limit=10, cursor=None)
    (item,) = [greencloud.function_list_item(f, tags=page.tags) for f in page.functions]
    assert item["tags"] == [{"id": red.id, "name": "crimson", "color": "#ff0000"}]
    with pytest.raises(NotFound, match="tag not found"):
        functions.page(ALICE, limit=10, cursor=None, tag=blue.id)


def test_the_tag_filter_reads_the_tag_s_index_and_only_its_functions(backend, calls):
    wanted, other = tag(name="wanted"), tag(name="other")
    untagged = [function(name=f"u{n}", code=None) for n in range(4)]
    tagged = [function(name=f"t{n}", tags=(wanted,), code=None) for n in range(3)]
    function(name="o", tags=(other,), code=None)
    calls.clear()
    assert listed(wanted) == tagged[::-1]  # newest first
    operations = [operation for operation, _ in calls]
    assert "Scan" not in operations
    assert operations == ["Query", "Query", "BatchGetItem"], operations
    tags_query, index_query, batch = (params for _, params in calls)
    assert "IndexName" not in tags_query  # the owner's tags, for the 404 and the names
    assert index_query["IndexName"] == "GSI2"
    assert index_query["ExpressionAttributeValues"][":pk"] == {"S": f"TAG#{wanted}#FUNC"}
    (request,) = batch["RequestItems"].values()
    assert sorted(key["PK"]["S"] for key in request["Keys"]) == sorted(
        f"FUNC#{f}" for f in tagged)
    assert not {f"FUNC#{f}" for f in untagged} & {key["PK"]["S"] for key in request["Keys"]}


def test_the_tag_filter_pages_with_its_cursor(backend):
    wanted = tag()
    tagged = [function(name=f"t{n}", tags=(wanted,), code=None) for n in range(5)]
    functions = FunctionService.from_env()
    seen, cursor = [], None
    while True:
        page = functions.page(ALICE, limit=2, cursor=cursor, tag=wanted)
        assert len(page.functions) <= 2
        seen += [record.id for record in page.functions]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == tagged[::-1]
    plain = functions.page(ALICE, limit=1, cursor=None)
    with pytest.raises(InvalidRequest, match="invalid cursor"):  # another listing's cursor
        functions.page(ALICE, limit=1, cursor=plain.cursor, tag=wanted)


def test_the_tag_filter_of_another_owner_s_or_an_unknown_tag_is_404(backend):
    bobs = tag(BOB)
    function(BOB, tags=(bobs,), code=None)
    for tag_id in (bobs, "6560f1a0ffffffffffffffff", "TAG#x"):
        with pytest.raises(NotFound, match="tag not found"):
            listed(tag_id)


def test_a_stale_membership_is_skipped(backend):
    """What a crash or a lost race leaves: a membership whose function lacks the tag, one
    whose function is gone, one of another owner's function: none is shown."""
    wanted = tag()
    kept = function(tags=(wanted,), code=None)
    lacking = function(name="lacking", code=None)
    bobs = function(BOB, name="bobs", code=None)
    memberships_store = FunctionService.from_env().memberships
    for function_id, owner in ((lacking, "alice"), ("6560f1a0ffffffffffffffff", "alice"),
                               (bobs, "bob")):
        memberships_store.put(function_id, owner, now_ns(), (wanted,), 0)
    assert listed(wanted) == [kept]


# --- PATCH ---------------------------------------------------------------------------------


def test_a_patch_changes_the_fields_given_and_moves_memberships(backend):
    first, second = tag(name="first"), tag(name="second")
    function_id = function(tags=(first,), code=None)
    functions = FunctionService.from_env()
    functions.update(ALICE, function_id, greencloud.parse_function_patch(
        {"description": "new words", "unknown": 1}))
    record = functions.get(ALICE, function_id)
    assert (record.name, record.description, record.tags) == ("f", "new words", [first])
    functions.update(ALICE, function_id, greencloud.parse_function_patch(
        {"name": "renamed", "tag": [second]}))
    record = functions.get(ALICE, function_id)
    assert (record.name, record.description, record.tags) == ("renamed", "new words", [second])
    assert (listed(first), listed(second)) == ([], [function_id])
    assert memberships(function_id) == [second]
    functions.update(ALICE, function_id, greencloud.parse_function_patch({"tag": []}))
    assert functions.get(ALICE, function_id).tags == []
    assert memberships(function_id) == [] and listed(second) == []


@pytest.mark.parametrize("body", [{"name": "has space"}, {"name": ""}, {"name": "x" * 65},
                                  {"description": "d" * 81}, {"tag": "notalist"},
                                  {"tag": ["x"] * 21}, {"name": None}, {"tag": [1]}])
def test_a_patch_has_create_s_bounds(body):
    with pytest.raises(InvalidRequest, match="invalid function"):
        greencloud.parse_function_patch(body)


@pytest.mark.parametrize("body", [{}, {"unknown": "only"}])
def test_a_patch_that_changes_nothing_is_a_400(backend, body):
    function_id = function(code=None)
    with pytest.raises(InvalidRequest, match="nothing to change"):
        FunctionService.from_env().update(ALICE, function_id,
                                          greencloud.parse_function_patch(body))


def test_a_name_patch_is_one_conditional_write(backend, calls):
    function_id = function(code=None)
    calls.clear()
    FunctionService.from_env().update(ALICE, function_id, FunctionPatch(name="g"))
    ((operation, params),) = calls
    assert operation == "UpdateItem" and "#o = :c_o" in params["ConditionExpression"]


def test_a_patch_with_an_unknown_tag_changes_nothing(backend):
    function_id = function(code=None)
    with pytest.raises(InvalidRequest, match="unknown tag"):
        FunctionService.from_env().update(ALICE, function_id, FunctionPatch(
            name="g", tags=("6560f1a0ffffffffffffffff",)))
    assert FunctionService.from_env().get(ALICE, function_id).name == "f"


def test_racing_tag_patches_leave_every_tag_of_the_function_indexed(backend):
    """Eight PATCHes of one function's tags at once, each a different set: whichever wins,
    the list by each tag shows the function exactly when it carries the tag."""
    tags = [tag(name=f"t{n}") for n in range(6)]
    function_id = function(code=None)
    sets = [tuple(tags[n % 6: n % 6 + 3]) for n in range(8)]
    barrier = threading.Barrier(len(sets))
    outcomes: list[str] = []

    def patch(wanted: tuple[str, ...]) -> None:
        service = FunctionService.from_env()
        barrier.wait()
        try:
            service.update(ALICE, function_id, FunctionPatch(tags=wanted))
            outcomes.append("changed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=patch, args=(wanted,)) for wanted in sets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert "changed" in outcomes and len(outcomes) == len(sets)
    final = FunctionService.from_env().get(ALICE, function_id).tags
    assert tuple(final) in sets
    for tag_id in tags:
        assert listed(tag_id) == ([function_id] if tag_id in final else []), tag_id
    assert set(final) <= set(memberships(function_id))


def test_a_slow_writer_cannot_bring_back_an_older_membership(backend):
    """Memberships never go back in version: a write for version 1 after one for 2 leaves 2,
    so the delete of a version-1 writer cannot remove what version 2 wrote."""
    wanted = tag()
    function_id = function(tags=(wanted,), code=None)
    store = FunctionService.from_env().memberships
    store.put(function_id, "alice", now_ns(), (wanted,), 2)
    store.put(function_id, "alice", now_ns(), (wanted,), 1)
    assert wiring.table().get(f"FUNC#{function_id}", f"TAG#{wanted}")["version"] == 2
    assert store.remove_others(function_id, (), 1) == 0
    assert memberships(function_id) == [wanted]


# --- pause ---------------------------------------------------------------------------------


def test_toggle_pause_twice_and_a_paused_function_refuses_tasks(backend):
    function_id = function()
    functions, tasks = FunctionService.from_env(), TaskService.from_env()
    assert functions.toggle_pause(ALICE, function_id) is True
    assert functions.get(ALICE, function_id).paused is True
    with pytest.raises(Conflict, match="function is paused"):
        tasks.create(ALICE, function_id, body=None, query={}, size=0)
    assert functions.toggle_pause(ALICE, function_id) is False
    assert functions.get(ALICE, function_id).paused is False
    assert tasks.create(ALICE, function_id, body=None, query={}, size=0).state == "Pending"


def _held_task(function_id: str) -> str:
    """A task of the function that an executor started and then held (the function paused)."""
    task = TaskService.from_env().create(ALICE, function_id, body=None, query={}, size=0)
    FunctionService.from_env().toggle_pause(ALICE, function_id)
    started = wiring.tasks().apply(task.task_guid, lifecycle.start("cell-1", now_ns()))
    assert HoldService.from_env().hold(
        type(task).model_validate(started.task), "cell-1") is True
    held = wiring.tasks().get(task.task_guid)
    assert (held.state, bool(held.held_at)) == ("Pending", True)
    return task.task_guid


def _queued() -> list[str]:
    queue = wiring.task_queue()
    found = []
    while messages := queue.client.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages"):
        found += [json.loads(message["Body"])["taskId"] for message in messages]
    return found


def test_a_resume_releases_the_tasks_held_for_it(backend):
    function_id = function()
    task_id = _held_task(function_id)
    _queued()  # the create's own message
    assert FunctionService.from_env().toggle_pause(ALICE, function_id) is False
    released = wiring.tasks().get(task_id)
    assert (released.state, released.held_at) == ("Pending", 0)
    assert _queued() == [task_id]


def test_deleting_a_function_releases_its_held_tasks_and_removes_what_it_had(backend):
    wanted = tag()
    function_id = function(tags=(wanted,))
    task_id = _held_task(function_id)
    _queued()
    assert wiring.table().get(f"FUNC#{function_id}", "METRICS")
    FunctionService.from_env().delete(ALICE, function_id)
    assert wiring.tasks().get(task_id).held_at == 0 and _queued() == [task_id]
    assert wiring.table().get(f"FUNC#{function_id}", "METRICS") is None
    assert memberships(function_id) == []
    assert listed(wanted) == []


# --- capabilities --------------------------------------------------------------------------


def test_capabilities_given_are_set_and_the_others_kept(backend):
    function_id = function()
    functions = FunctionService.from_env()
    assert functions.get(ALICE, function_id).capabilities.model_dump() == {
        "timeout": 10, "cpuCount": 0, "memSize": 0, "networkLatency": 0, "privileged": False}
    functions.set_capabilities(ALICE, function_id, greencloud.parse_capabilities(
        {"timeout": 120, "memSize": 2048}))
    functions.set_capabilities(ALICE, function_id, greencloud.parse_capabilities(
        {"cpuCount": 4, "networkLatency": 0}))
    assert functions.get(ALICE, function_id).capabilities.model_dump() == {
        "timeout": 120, "cpuCount": 4, "memSize": 2048, "networkLatency": 0,
        "privileged": False}
    task = TaskService.from_env().create(ALICE, function_id, body=None, query={}, size=0)
    assert (task.timeout, task.capabilities.memSize) == (120, 2048)


@pytest.mark.parametrize(("body", "field", "bound"), [
    ({"timeout": 9}, "timeout", "greater than or equal to 10"),
    ({"timeout": 121}, "timeout", "less than or equal to 120"),
    ({"timeout": "10"}, "timeout", "integer"),
    ({"timeout": 10.5}, "timeout", "integer"),
    ({"timeout": True}, "timeout", "integer"),
    ({"timeout": None}, "timeout", "integer"),
    ({"cpuCount": 5}, "cpuCount", "less than or equal to 4"),
    ({"cpuCount": -1}, "cpuCount", "greater than or equal to 0"),
    ({"memSize": 2049}, "memSize", "less than or equal to 2048"),
    ({"networkLatency": -1}, "networkLatency", "greater than or equal to 0"),
    ({"networkLatency": 10**40}, "networkLatency", "less than or equal to 60000"),
    ({"privileged": "yes"}, "privileged", "boolean"),
    ({"privileged": 1}, "privileged", "boolean"),
])
def test_capabilities_out_of_bounds_or_of_the_wrong_type_are_400(body, field, bound):
    with pytest.raises(InvalidRequest, match="invalid capabilities") as refused:
        greencloud.parse_capabilities(body)
    assert refused.value.detail.startswith(f"{field}: ") and bound in refused.value.detail


def test_privileged_is_refused_unless_the_platform_allows_it(backend, monkeypatch):
    function_id = function()
    functions = FunctionService.from_env()
    for body in ({}, {"unknown": 1}):
        with pytest.raises(InvalidRequest, match="nothing to change"):
            functions.set_capabilities(ALICE, function_id, greencloud.parse_capabilities(body))
    with pytest.raises(InvalidRequest, match="privileged work is not allowed on this platform"):
        functions.set_capabilities(ALICE, function_id, {"privileged": True, "timeout": 30})
    assert functions.get(ALICE, function_id).capabilities.timeout == 10  # nothing written
    functions.set_capabilities(ALICE, function_id, {"privileged": False})
    allowing = functions.settings.model_copy(update={"allow_privileged": True})
    monkeypatch.setattr(functions, "settings", allowing)
    functions.set_capabilities(ALICE, function_id, {"privileged": True})
    assert functions.get(ALICE, function_id).capabilities.privileged is True


def test_capabilities_reach_the_function_s_own_lambda(backend):
    """Isolation "lambda": new memory and timeout are the function's Lambda's at once."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    role = boto3.client("iam").create_role(
        RoleName="taskfn-function-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    layer = aws.client("lambda").publish_layer_version(
        LayerName="taskfn", Content={"ZipFile": make_zip({"python/taskfn/__init__.py": ""})}
    )["LayerVersionArn"]
    lambdas = FunctionLambdas(aws.client("lambda"), prefix="tfn-caps1234-",
                              role_arn=role["Arn"], layers=[layer])
    builds = BuildService(wiring.builds(), wiring.functions(), wiring.blobs(), lambdas)
    functions = FunctionService(wiring.functions(), builds)
    created = functions.create(ALICE, NewFunction(name="f", source=CODE))
    functions.set_capabilities(ALICE, created.id, {"memSize": 1024, "timeout": 60})
    config = aws.client("lambda").get_function_configuration(
        FunctionName=f"tfn-caps1234-{created.id}")
    assert (config["MemorySize"], config["Timeout"]) == (1024, 60 + 10)
    # A function without code has no Lambda yet: its first build gets them.
    bare = functions.create(ALICE, NewFunction(name="bare"))
    functions.set_capabilities(ALICE, bare.id, {"memSize": 256})
    assert functions.get(ALICE, bare.id).capabilities.memSize == 256


# --- metrics -------------------------------------------------------------------------------


def test_the_function_view_counts_its_tasks(backend):
    function_id = function()
    tasks = TaskService.from_env()
    created = [tasks.create(ALICE, function_id, body=None, query={}, size=0) for _ in range(3)]
    wiring.tasks().apply(created[0].task_guid, lifecycle.start("cell-1", now_ns()))
    wiring.tasks().apply(created[0].task_guid, lifecycle.complete("cell-1", now_ns(),
                                                                  failed=False))
    detail = FunctionService.from_env().detail(ALICE, function_id)
    assert detail.metrics == {"todaysTasks": 3, "pendingTasks": 2, "weekTasks": 3,
                              "completedTasks": 1}
    view = greencloud.function_view(detail.function, tags=detail.tags, metrics=detail.metrics)
    assert view["metrics"] == detail.metrics and view["tags"] == []


# --- another owner's ------------------------------------------------------------------------


def test_another_owner_s_function_is_404_on_every_route(backend):
    wanted = tag()
    function_id = function(tags=(wanted,))
    functions = FunctionService.from_env()
    attempts = [
        lambda: functions.detail(BOB, function_id),
        lambda: functions.update(BOB, function_id, FunctionPatch(name="stolen")),
        lambda: functions.update(BOB, function_id, FunctionPatch(tags=())),
        lambda: functions.toggle_pause(BOB, function_id),
        lambda: functions.get(BOB, function_id).capabilities,
        lambda: functions.set_capabilities(BOB, function_id, {"timeout": 99}),
        lambda: functions.delete(BOB, function_id),
        lambda: functions.page(BOB, limit=10, cursor=None, tag=wanted),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    record = functions.get(ALICE, function_id)
    assert (record.name, record.tags, record.paused, record.capabilities.timeout) == (
        "f", [wanted], False, 10)
    assert listed(wanted) == [function_id] and memberships(function_id) == [wanted]


def test_a_deleted_function_is_404_everywhere_and_its_patch_leaves_nothing(backend):
    wanted = tag()
    function_id = function(code=None)
    functions = FunctionService.from_env()
    functions.delete(ALICE, function_id)
    for attempt in (lambda: functions.update(ALICE, function_id, FunctionPatch(tags=(wanted,))),
                    lambda: functions.update(ALICE, function_id, FunctionPatch(name="g")),
                    lambda: functions.toggle_pause(ALICE, function_id),
                    lambda: functions.set_capabilities(ALICE, function_id, {"timeout": 20})):
        with pytest.raises(NotFound):
            attempt()
    assert memberships(function_id) == [] and listed(wanted) == []
    assert wiring.table().get(f"FUNC#{function_id}", "FUNC") is None


def test_membership_keys_sort_like_the_function_list(backend):
    wanted = tag()
    function_id = function(tags=(wanted,), code=None)
    record = FunctionService.from_env().get(ALICE, function_id)
    item = wiring.table().get(f"FUNC#{function_id}", f"TAG#{wanted}")
    assert (item["GSI2PK"], item["GSI2SK"]) == (f"TAG#{wanted}#FUNC",
                                                time_key(record.created_at, function_id))


def test_a_refused_request_on_another_owner_s_function_is_404_not_400(backend, calls):
    """A probe with a bad body learns nothing of an id: the refusal reads the function and
    answers as for any id not the caller's. The caller's own bad request stays a 400."""
    function_id = function(code=None)
    functions = FunctionService.from_env()
    for caller, expected in ((BOB, NotFound), (ALICE, InvalidRequest)):
        with pytest.raises(expected), functions.owner_first(caller, function_id):
            functions.update(caller, function_id, FunctionPatch())
        with pytest.raises(expected), functions.owner_first(caller, function_id):
            functions.set_capabilities(caller, function_id, {"privileged": True})
    calls.clear()
    with functions.owner_first(ALICE, function_id):  # accepted: no read added
        functions.update(ALICE, function_id, FunctionPatch(name="g"))
    assert [operation for operation, _ in calls] == ["UpdateItem"]
