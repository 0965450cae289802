"""Services against moto: tokens, functions, builds and tasks, including the bad inputs."""

from __future__ import annotations

import json

import pytest

from taskfn import wiring
from taskfn.errors import InvalidRequest, NotFound, PayloadTooLarge
from taskfn.models import BuildStatus, Scope
from taskfn.services.builds import BuildService
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.services.tokens import TokenService, hash_token

from .helpers import ALICE, BOB, make_zip

HELLO = "def handler(event, context):\n    return 'hello'\n"


def test_tokens_are_stored_only_as_hashes(backend):
    service = TokenService.from_env()
    with pytest.raises(InvalidRequest):  # a cell token is issued with its node only
        service.create("alice", "cell")
    issued = service.create("alice", "cell", node="west-1")
    assert issued.token.startswith("tfn_") and issued.scope is Scope.CELL
    item = wiring.table().get(f"TOKEN#{hash_token(issued.token)}", "TOKEN")
    assert issued.token not in json.dumps(item)
    assert service.authenticate(issued.token).user == "alice"
    assert service.authenticate(f"Bearer {issued.token}").scope is Scope.CELL
    assert service.authenticate(issued.token).node == "west-1"
    assert service.authenticate("Bearer nope-nope-nope-nope") is None
    assert service.authenticate(None) is None
    with pytest.raises(InvalidRequest):
        service.create("bad user!", "user")
    with pytest.raises(InvalidRequest):
        service.create("carol", "root")


def test_another_users_function_is_not_found(backend):
    functions = FunctionService.from_env()
    record = functions.create(ALICE, NewFunction(name="hello", source=HELLO))
    assert functions.get(ALICE, record.id).build_id
    with pytest.raises(NotFound):
        functions.get(BOB, record.id)
    with pytest.raises(NotFound):
        functions.delete(BOB, record.id)
    with pytest.raises(NotFound):
        functions.get(ALICE, "../../etc/passwd")
    functions.delete(ALICE, record.id)
    with pytest.raises(NotFound):
        functions.get(ALICE, record.id)


def test_a_good_build_points_the_function_at_its_code(backend):
    functions = FunctionService.from_env()
    builds = BuildService.from_env()
    record = functions.create(ALICE, NewFunction(name="empty"))
    build = builds.create(ALICE, record.id, make_zip({"main.py": HELLO, "lib/util.py": "X=1"}))
    assert build.status is BuildStatus.SUCCESS
    assert [step["status"] for step in build.timeline] == ["PENDING", "SUCCESS"]
    assert functions.get(ALICE, record.id).build_id == build.id
    assert wiring.blobs().get(build.code_key).startswith(b"PK")
    assert builds.get(ALICE, build.id).status is BuildStatus.SUCCESS
    with pytest.raises(NotFound):
        builds.get(BOB, build.id)


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (make_zip({"../evil.py": "x", "main.py": HELLO}), ".."),
        (make_zip({"other.py": HELLO}), "main.py"),
        (make_zip({"main.py": "def handler(:\n"}), "line"),
        (b"not a zip at all", "zip"),
    ],
)
def test_a_broken_zip_ends_failed_with_a_log_line_that_says_why(backend, archive, reason):
    functions = FunctionService.from_env()
    record = functions.create(ALICE, NewFunction(name="broken"))
    build = BuildService.from_env().create(ALICE, record.id, archive)
    assert build.status is BuildStatus.FAILED
    assert reason in build.log[-1]
    assert functions.get(ALICE, record.id).build_id == ""


def test_an_oversized_zip_is_413(backend):
    record = FunctionService.from_env().create(ALICE, NewFunction(name="big"))
    with pytest.raises(PayloadTooLarge):
        BuildService.from_env().create(ALICE, record.id, b"x" * (6 * 1024 * 1024))


def test_create_task_writes_pending_and_sends_its_id(backend):
    function = FunctionService.from_env().create(ALICE, NewFunction(name="f", source=HELLO))
    tasks = TaskService.from_env()
    task = tasks.create(ALICE, function.id, body={"a": 1}, query={"q": "x"}, size=7)
    stored = tasks.get(ALICE, task.task_guid)
    assert stored.state == "Pending"
    assert stored.input == {"body": {"a": 1}, "query": {"q": "x"}}
    queue = wiring.task_queue()
    messages = queue.client.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)
    assert [json.loads(m["Body"]) for m in messages["Messages"]] == [{"taskId": task.task_guid}]
    with pytest.raises(NotFound):
        tasks.get(BOB, task.task_guid)
    with pytest.raises(NotFound, match="not finished"):
        tasks.result(ALICE, task.task_guid)


def test_a_large_input_lives_in_s3(backend):
    function = FunctionService.from_env().create(ALICE, NewFunction(name="f", source=HELLO))
    tasks = TaskService.from_env()
    body = {"blob": "x" * 100_000}
    task = tasks.create(ALICE, function.id, body=body, query={}, size=100_020)
    stored = tasks.get(ALICE, task.task_guid)
    assert stored.input is None and stored.input_key
    assert tasks.input_of(stored)["body"] == body


def test_task_refusals(backend):
    functions = FunctionService.from_env()
    tasks = TaskService.from_env()
    without_code = functions.create(ALICE, NewFunction(name="nocode"))
    with pytest.raises(InvalidRequest, match="no code"):
        tasks.create(ALICE, without_code.id, body=None, query={}, size=0)
    with pytest.raises(NotFound):
        tasks.create(BOB, without_code.id, body=None, query={}, size=0)
    with pytest.raises(PayloadTooLarge):
        tasks.create(ALICE, without_code.id, body=None, query={}, size=2 * 1024 * 1024)
