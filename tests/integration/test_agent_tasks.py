"""Coder's agent tasks against moto (services/agenttasks.py): a conversation turn by turn
through the one lifecycle and the executor, and every rule of reference/coder.md by status.

Most tests run turns with a fake runner (no child process: fast); one runs real Python
functions in sandboxes, with their history and their state reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskfn import ids, lifecycle, wiring
from taskfn.adapters import coder
from taskfn.errors import Conflict, InvalidRequest, NotFound
from taskfn.lifecycle import State
from taskfn.models import BuildRecord, BuildStatus, FunctionRecord, now_ns
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.python import Execution, run_python
from taskfn.services.agenttasks import AgentTaskService
from taskfn.services.executor import Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings

from .helpers import ALICE, BOB, make_zip, open_keys

SOURCE = """\
def handler(event, context):
    context.report_state("working", "thinking about " + event["input"])
    context.report_state("idle", "turn %d done" % (len(event["history"]) // 2 + 1),
                         "https://example.com/t/" + event["taskId"])
    return "%d:%s" % (len(event["history"]), event["input"].upper())
"""


CODE = "def handler(event, context):\n    return None\n"


def template_version(source: str | None = None) -> str:
    """A build of alice's: a real one of `source`, or (for the fake runner) only its
    records, which is much faster."""
    if source is not None:
        function = FunctionService.from_env().create(ALICE, NewFunction(name="agent",
                                                                        source=source))
        return coder.id_uuid(function.build_id)
    function_id, build_id = ids.new_id(), ids.new_id()
    wiring.blobs().put(f"code/{build_id}.zip", make_zip({"main.py": CODE}),
                       "application/zip")
    wiring.functions().put_new(FunctionRecord(id=function_id, owner="alice", name="agent",
                                              created_at=1, build_id=build_id,
                                              code_key=f"code/{build_id}.zip"))
    wiring.builds().put(BuildRecord(id=build_id, owner="alice", function_id=function_id,
                                    status=BuildStatus.SUCCESS, created_at=2,
                                    code_key=f"code/{build_id}.zip"))
    return coder.id_uuid(build_id)


def service() -> AgentTaskService:
    return AgentTaskService.from_env()


def send(task_id: str, text: str) -> None:
    """Alice sends `text`, as the send route does: the task resolved first."""
    service().send(service().task(ALICE, "me", task_id, consistent=True), text)


def update_input(task_id: str, text: str) -> None:
    service().update_input(service().task(ALICE, "me", task_id, consistent=True), text)


def executor(tmp_path: Path, runner=run_python) -> Executor:
    return Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                    CodeCache(tmp_path / "code"), "executor-test", get_settings(), runner)


def echo_runner(code_dir, event, **_):
    """A turn without a process: answers its input upper-cased, or fails on "boom"."""
    if event["input"] == "boom":
        return Execution(succeeded=False, timed_out=False, status_code=500,
                         body='{"errorType": "ValueError"}', failure_reason="ValueError")
    return Execution(succeeded=True, timed_out=False, status_code=200,
                     headers={"Content-Type": "text/plain"}, body=event["input"].upper())


def create(prompt: str = "Summarise the report", **given):
    return service().create(ALICE, given.pop("user", "me"),
                            template_version_id=given.pop("version", None) or template_version(),
                            preset_id=None, prompt=prompt, name=given.pop("name", ""),
                            display_name=given.pop("display_name", ""))


def status(task_id: str) -> str:
    return coder.status_of(wiring.tasks().get(task_id, consistent=True))


def test_a_conversation_runs_turn_by_turn_as_attempts_of_one_task(backend, tmp_path):
    task = create("Summarise the report", version=template_version(SOURCE))
    run = executor(tmp_path)
    assert status(task.task_guid) == "pending"
    assert run.run(task.task_guid) == "succeeded"
    assert status(task.task_guid) == "active"
    for text in ("and the totals", "thanks"):
        send(task.task_guid, text)
        assert status(task.task_guid) == "active"  # the turn is queued: active, app busy
        assert run.run(task.task_guid) == "succeeded"
    logs = service().logs(ALICE, "me", task.task_guid)
    assert not logs.snapshot
    assert [(e["type"], e["content"]) for e in logs.entries] == [
        ("input", "Summarise the report"), ("output", "0:SUMMARISE THE REPORT"),
        ("input", "and the totals"), ("output", "2:AND THE TOTALS"),
        ("input", "thanks"), ("output", "4:THANKS")]
    assert [e["id"] for e in logs.entries] == list(range(6))
    record = wiring.tasks().get(task.task_guid)
    assert record.turn == 3 and record.state is State.COMPLETED
    view = coder.task_view(record, None)
    assert view["current_state"]["state"] == "idle"
    assert view["current_state"]["message"] == "turn 3 done"
    assert view["current_state"]["uri"].endswith(task.task_guid)
    # The same record through the platform API, by its UUID.
    assert TaskService.from_env().get(ALICE, task.task_guid).task_guid == task.task_guid
    assert f"TASK#{task.task_guid}" not in open_keys()  # between turns: nothing to converge


def test_send_pause_input_and_resume_follow_the_status(backend, tmp_path):
    task = create("first")
    task_id = task.task_guid
    tasks = wiring.tasks()
    with pytest.raises(Conflict, match="Task is pending"):
        send(task_id, "more")
    tasks.apply(task_id, lifecycle.start("executor-test", now_ns()))
    assert status(task_id) == "initializing"
    with pytest.raises(Conflict, match="Task is initializing"):
        send(task_id, "more")
    with pytest.raises(Conflict, match="Task is busy"):
        service().pause(ALICE, "me", task_id)
    tasks.apply(task_id, lifecycle.complete("executor-test", now_ns(), failed=False, extra={
        "response_status": 200, "response_body": "FIRST"}))
    with pytest.raises(InvalidRequest, match="Task input is required"):
        send(task_id, "  ")
    with pytest.raises(Conflict, match="task must be paused"):
        update_input(task_id, "new prompt")
    with pytest.raises(Conflict, match="already running"):
        service().resume(ALICE, "me", task_id)
    send(task_id, "second")
    assert f"TASK#{task_id}" in open_keys()  # the queued turn is on the open index
    with pytest.raises(Conflict, match="not ready to accept input"):
        send(task_id, "third")
    with pytest.raises(Conflict, match="Task is busy"):
        service().pause(ALICE, "me", task_id)
    assert executor(tmp_path, echo_runner).run(task_id) == "succeeded"

    paused = service().pause(ALICE, "me", task_id)
    assert coder.status_of(paused) == "paused" and paused.held_at
    with pytest.raises(Conflict, match="already paused"):
        service().pause(ALICE, "me", task_id)
    with pytest.raises(Conflict, match="Task is paused") as refused:
        send(task_id, "third")
    assert refused.value.detail == "Resume the task to send messages."
    logs = service().logs(ALICE, "me", task_id)
    assert logs.snapshot and logs.snapshot_at == paused.held_at
    assert [e["content"] for e in logs.entries] == ["first", "FIRST", "second", "SECOND"]
    with pytest.raises(InvalidRequest, match="Task input is required"):
        update_input(task_id, "")
    update_input(task_id, "the first, edited")
    record = tasks.get(task_id)
    assert record.initial_prompt == "the first, edited" and coder.status_of(record) == "paused"
    assert service().logs(ALICE, "me", task_id).entries[0]["content"] == "the first, edited"

    resumed = service().resume(ALICE, "me", task_id)
    assert coder.status_of(resumed) == "active" and not resumed.held_at
    send(task_id, "third")
    assert executor(tmp_path, echo_runner).run(task_id) == "succeeded"
    history = [e["content"] for e in service().logs(ALICE, "me", task_id).entries]
    assert history == ["the first, edited", "FIRST", "second", "SECOND", "third", "THIRD"]


def test_a_failed_turn_is_error_refusing_input_and_logs(backend, tmp_path):
    task = create("boom")
    logs = service().logs(ALICE, "me", task.task_guid)  # pending: an empty snapshot
    assert logs.snapshot and logs.entries == [] and not logs.snapshot_at
    assert executor(tmp_path, echo_runner).run(task.task_guid) == "failed"
    assert status(task.task_guid) == "error"
    with pytest.raises(InvalidRequest, match="Task must be active"):
        send(task.task_guid, "again")
    with pytest.raises(Conflict, match="Cannot fetch logs"):
        service().logs(ALICE, "me", task.task_guid)
    with pytest.raises(Conflict):
        service().pause(ALICE, "me", task.task_guid)


def test_names_are_unique_per_owner_whatever_their_case(backend):
    version = template_version()
    create("one", name="Report-1", version=version)
    with pytest.raises(Conflict) as refused:
        create("two", name="report-1", version=version)
    assert refused.value.validations[0]["field"] == "name"
    with pytest.raises(NotFound):  # another user's path: not the caller's to create in
        create("two", user="bob", version=version)
    # Generated: the prompt's first words, 4 hex digits; the display name the prompt.
    generated = create("Fix the FLAKY test, please!" * 5, version=version)
    assert coder.name_problem(generated.agent_name) is None
    assert generated.agent_name.startswith("fix-the-flaky-test-please-f")
    assert len(generated.agent_name) <= 32
    assert generated.agent_display_name == ("Fix the FLAKY test, please!" * 5)[:64]
    for bad in ("new", "with space", "-x", "x" * 33, "a--b"):
        with pytest.raises(InvalidRequest, match="provided name") as refused:
            create("p", name=bad, version=version)
        assert refused.value.detail
    with pytest.raises(InvalidRequest, match="64 characters"):
        create("p", display_name="d" * 65, version=version)


def test_unknown_or_foreign_template_versions_are_400(backend):
    for version in (coder.id_uuid("6560f1a0ffffffffffffffff"),
                    "11111111-2222-4333-8444-555555555555"):
        with pytest.raises(InvalidRequest, match="Template version not found"):
            create("p", version=version)
    bobs = template_version()
    build = wiring.builds().get(coder.uuid_id(bobs))
    wiring.builds().put(build.model_copy(update={"owner": "bob"}))
    with pytest.raises(InvalidRequest, match="Template version not found"):
        create("p", version=bobs)


def test_tasks_by_id_under_any_user_by_name_only_under_their_owner(backend):
    task = create("hello", name="by-name")
    get = service().task
    assert get(ALICE, "me", task.task_guid).task_guid == task.task_guid
    assert get(ALICE, "somebody-else", task.task_guid).task_guid == task.task_guid
    assert get(ALICE, "alice", "BY-NAME").task_guid == task.task_guid
    assert get(ALICE, coder.user_id("alice"), "by-name").task_guid == task.task_guid
    for caller, user, ident in ((ALICE, "bob", "by-name"), (BOB, "me", "by-name"),
                                (BOB, "me", task.task_guid), (ALICE, "me", "no-such")):
        with pytest.raises(NotFound):
            get(caller, user, ident)
    # A platform task is no agent task, even its owner's.
    platform = wiring.tasks().get(task.task_guid).model_copy(
        update={"task_guid": "0b5e6f0c-0000-4000-8000-000000000000", "turn": 0})
    wiring.tasks().put_new(platform)
    with pytest.raises(NotFound):
        get(ALICE, "me", platform.task_guid)


def test_delete_then_404_and_the_name_is_free_again(backend, tmp_path):
    version = template_version()
    task = create("hello", name="gone", version=version)
    service().delete(ALICE, "me", "gone")
    for attempt in (lambda: service().task(ALICE, "me", task.task_guid),
                    lambda: service().delete(ALICE, "me", task.task_guid)):
        with pytest.raises(NotFound):
            attempt()
    assert wiring.tasks().get(task.task_guid) is None
    # The queued first turn finds no task: nothing runs.
    assert executor(tmp_path, echo_runner).run(task.task_guid) == "skipped"
    again = create("hello", name="gone", version=version)
    assert again.task_guid != task.task_guid
    # Deleted while its turn runs: the turn's end finds no task and writes nothing.
    task = again
    run = executor(tmp_path, lambda *a, **k: (service().delete(ALICE, "me", task.task_guid),
                                              echo_runner(*a, **k))[1])
    assert run.run(task.task_guid) == "superseded"
    assert wiring.tasks().get(task.task_guid) is None


def test_list_is_newest_first_and_filtered_by_status(backend, tmp_path):
    version = template_version()
    first = create("one", version=version)
    second = create("two", version=version)
    executor(tmp_path, echo_runner).run(first.task_guid)
    listed = service().list(ALICE, coder.Filter())
    assert [t.task_guid for t in listed] == [second.task_guid, first.task_guid]
    active = service().list(ALICE, coder.parse_query('status:"active" owner:me'))
    assert [t.task_guid for t in active] == [first.task_guid]
    assert service().list(BOB, coder.Filter()) == []
    with pytest.raises(InvalidRequest) as refused:
        service().list(ALICE, coder.parse_query("owner:bob"))
    assert refused.value.validations[0]["field"] == "owner"


def test_large_inputs_and_outputs_go_through_s3(backend, tmp_path):
    big = "x" * 40_000
    task = create(big)
    record = wiring.tasks().get(task.task_guid)
    assert record.input_key and "input_json" not in json.dumps(record.model_dump())
    executor(tmp_path, echo_runner).run(task.task_guid)
    send(task.task_guid, "y" * 10)
    record = wiring.tasks().get(task.task_guid)
    assert record.input_key.endswith("turn-2/input.json")
    entries = service().conversation(record)
    assert entries[0]["content"] == big and entries[1]["content"] == big.upper()


def test_racing_sends_and_creates_have_one_winner(backend, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    version = template_version()
    task = create("hello", version=version)
    executor(tmp_path, echo_runner).run(task.task_guid)

    def attempt(text: str) -> str:
        try:
            send(task.task_guid, text)
            return "sent"
        except Conflict as error:
            return error.message

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, ["a", "b", "c", "d"]))
    assert outcomes.count("sent") == 1, outcomes
    assert set(outcomes) - {"sent"} <= {"Task app is not ready to accept input."}
    assert wiring.tasks().get(task.task_guid).turn == 2

    def named(_: int) -> str:
        try:
            return create("x", name="Same-Name", version=version).task_guid
        except Conflict:
            return "taken"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(named, range(4)))
    assert sum(outcome != "taken" for outcome in outcomes) == 1, outcomes


def test_inputs_too_large_for_the_task_s_item_are_400_not_a_failed_write(backend):
    # The initial prompt is kept on the task's item (400 KB at most): a 500 KB prompt would
    # have been DynamoDB's refusal, a 500.
    with pytest.raises(InvalidRequest, match="Task input is too long") as refused:
        create("p" * 500_000)
    assert refused.value.validations[0]["field"] == "input"
    task = create("short")
    wiring.tasks().apply(task.task_guid, lifecycle.start("executor-test", now_ns()))
    wiring.tasks().apply(task.task_guid, lifecycle.complete(
        "executor-test", now_ns(), failed=False, extra={"response_status": 200,
                                                         "response_body": "ok"}))
    with pytest.raises(InvalidRequest, match="Task input is too long"):
        send(task.task_guid, "é" * (coder.INPUT_MAX // 2 + 1))  # two bytes each in UTF-8
    service().pause(ALICE, "me", task.task_guid)
    with pytest.raises(InvalidRequest, match="Task input is too long"):
        update_input(task.task_guid, "p" * 500_000)
    assert [e["content"] for e in service().conversation(
        wiring.tasks().get(task.task_guid))] == ["short", "ok"]


def test_a_conversation_past_what_a_turn_takes_is_409_and_keeps_its_logs(
        backend, tmp_path, monkeypatch):
    monkeypatch.setattr(coder, "CONVERSATION_MAX", 2000)
    task = create("a" * 500)
    executor(tmp_path, echo_runner).run(task.task_guid)
    send(task.task_guid, "b" * 500)
    executor(tmp_path, echo_runner).run(task.task_guid)
    with pytest.raises(Conflict, match="conversation is too long") as refused:
        send(task.task_guid, "c" * 500)
    assert "start a new task" in refused.value.detail
    record = wiring.tasks().get(task.task_guid, consistent=True)
    assert coder.status_of(record) == "active" and record.turn == 2
    assert [e["content"] for e in service().conversation(record)] == [
        "a" * 500, "A" * 500, "b" * 500, "B" * 500]


def test_a_turn_held_by_its_paused_function_says_so(backend):
    task = create("first")
    tasks = wiring.tasks()
    tasks.apply(task.task_guid, lifecycle.start("executor-test", now_ns()))
    tasks.apply(task.task_guid, lifecycle.hold("executor-test", now_ns()))
    assert status(task.task_guid) == "paused"
    with pytest.raises(Conflict, match="its function is paused") as refused:
        service().resume(ALICE, "me", task.task_guid)
    assert f"/v1/function/{task.function_id}/resume" in refused.value.detail
    with pytest.raises(Conflict, match="its function is paused"):
        update_input(task.task_guid, "edited")


def test_a_name_that_reads_as_a_uuid_is_refused(backend):
    # 32 hex digits are a valid name by Coder's rules, but `{task}` would read them as an id
    # and the task could never be found by its name.
    name = "0123456789abcdef0123456789abcdef"
    with pytest.raises(InvalidRequest, match="provided name") as refused:
        create(name=name)
    assert refused.value.validations == [{"field": "name", "detail": "must not be a UUID"}]


def test_a_state_message_with_lone_surrogates_is_kept_as_text(backend, tmp_path):
    # User code reports text no UTF-8 holds: the task keeps U+FFFD in its place, so every
    # reader (the Go client, the events, the console) gets text it can decode.
    source = ('def handler(event, context):\n'
              '    context.report_state("idle", "half \\ud83d of an emoji", "u\\udfff")\n'
              '    return "ok"\n')
    task = create("hi", version=template_version(source))
    assert executor(tmp_path).run(task.task_guid) == "succeeded"
    state = coder.task_view(wiring.tasks().get(task.task_guid), None)["current_state"]
    assert state["message"] == "half \ufffd of an emoji" and state["uri"] == "u\ufffd"
    json.dumps(state, ensure_ascii=False).encode("utf-8")  # strict: raises on a surrogate
