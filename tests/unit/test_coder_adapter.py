"""Coder's tasks API adapter, pure: the status table, names, the q filter, times, ids and
the error body."""

from __future__ import annotations

import json
import re

import pytest

from taskfn.adapters import coder
from taskfn.errors import Conflict, InvalidRequest, NotFound, TaskfnError, Unauthenticated
from taskfn.lifecycle import State
from taskfn.models import Caller, Scope, TaskRecord

ALICE = Caller(user="alice", scope=Scope.USER)


def task(state: State, turn: int = 1, held: int = 0, failed: bool = False) -> TaskRecord:
    return TaskRecord(task_guid="0b5e6f0c-7a8d-4e2f-9c1b-3d4e5f6a7b8c", owner="alice",
                      created_at=1, updated_at=2, state=state, turn=turn, held_at=held,
                      failed=failed)


@pytest.mark.parametrize(("record", "status"), [
    (task(State.PENDING), "pending"),
    (task(State.RUNNING), "initializing"),
    (task(State.COMPLETED), "active"),
    (task(State.PENDING, turn=2), "active"),
    (task(State.RUNNING, turn=2), "active"),
    (task(State.COMPLETED, turn=3, held=5), "paused"),
    (task(State.PENDING, turn=2, held=5), "paused"),  # held for its paused function
    (task(State.COMPLETED, failed=True), "error"),
    (task(State.COMPLETED, turn=2, failed=True), "error"),
    (task(State.RESOLVING), "unknown"),
])
def test_the_status_table(record, status):
    assert coder.status_of(record) == status
    assert status in coder.STATUSES


def test_every_combination_has_a_status():
    for state in State:
        for turn in (1, 2):
            for held in (0, 1):
                for failed in (False, True):
                    assert coder.status_of(task(state, turn, held, failed)) in coder.STATUSES


@pytest.mark.parametrize(("name", "problem"), [
    ("ok-name-1", None), ("A1", None), ("x" * 32, None),
    ("x" * 33, "<= 32"), ("new", "new"), ("CREATE", "create"), ("a--b", "alphanumeric"),
    ("-a", "alphanumeric"), ("a-", "alphanumeric"), ("has space", "alphanumeric"), ("", "al"),
    ("é", "alphanumeric"),
])
def test_name_rules(name, problem):
    found = coder.name_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_generated_names_clean_the_prompt_and_add_four_hex_digits():
    assert coder.generated_name("Fix the flaky test!", "0a1b") == "fix-the-flaky-test-0a1b"
    assert coder.generated_name("???", "ffff") == "task-ffff"
    long = coder.generated_name("Refactor the payment service's retry logic now")
    assert re.fullmatch(r"refactor-the-payment-servic-[0-9a-f]{4}", long), long
    for prompt in ("a-" * 40, "  --x--  ", "Ünïcode wörds here", "x" * 100):
        assert coder.name_problem(coder.generated_name(prompt)) is None, prompt


def test_display_names_default_to_the_prompt_and_are_at_most_64():
    assert coder.display_name_of("", "p" * 100) == "p" * 64
    assert coder.display_name_of("mine", "p") == "mine"
    with pytest.raises(InvalidRequest) as refused:
        coder.display_name_of("d" * 65, "p")
    assert refused.value.validations[0]["field"] == "display_name"


@pytest.mark.parametrize(("q", "expected"), [
    ("", coder.Filter()),
    ('owner:"me" status:"active"', coder.Filter(owner="me", status="active")),
    ("OWNER:Alice", coder.Filter(owner="alice")),  # lower-cased first
    ("alice", coder.Filter(owner="alice")),  # a bare word is the owner
    ('organization:"default"  status:paused', coder.Filter(organization="default",
                                                           status="paused")),
    ('owner:"a b"', coder.Filter(owner="a b")),
])
def test_the_filter_language(q, expected):
    assert coder.parse_query(q) == expected


@pytest.mark.parametrize(("q", "field"), [
    ("foo:bar", "foo"), ("owner:a:b", "q"), (":owner", "q"), ("owner:", "q"),
    ("status:running", "status"), ("owner:a owner:b", "owner"),
])
def test_bad_queries_are_400_with_validations(q, field):
    with pytest.raises(InvalidRequest) as refused:
        coder.parse_query(q)
    assert refused.value.message == "Invalid task search query."
    assert refused.value.validations[0]["field"] == field
    assert refused.value.validations[0]["detail"]


def test_owner_and_organization_must_be_the_caller_s():
    for owner in ("me", "alice", coder.user_id("alice")):
        coder.check_filter(coder.Filter(owner=owner), ALICE)
    coder.check_filter(coder.Filter(organization=coder.ORGANIZATION_ID), ALICE)
    for found, field in ((coder.Filter(owner="bob"), "owner"),
                         (coder.Filter(organization="acme"), "organization")):
        with pytest.raises(InvalidRequest) as refused:
            coder.check_filter(found, ALICE)
        assert refused.value.validations[0]["field"] == field


def test_times_are_rfc3339_as_go_writes_them():
    assert coder.rfc3339(1_795_341_600_000_000_000) == "2026-11-22T10:00:00Z"
    assert coder.rfc3339(1_795_341_600_123_450_000) == "2026-11-22T10:00:00.12345Z"


def test_ids_map_to_uuids_and_back():
    uuid = coder.id_uuid("6560f1a0bbbbbbbbbbbbbbbb")
    assert uuid == "6560f1a0-bbbb-bbbb-bbbb-bbbb00000000"
    assert coder.uuid_id(uuid) == "6560f1a0bbbbbbbbbbbbbbbb"
    assert coder.uuid_id("6560f1a0-bbbb-bbbb-bbbb-bbbb00000001") is None
    assert coder.user_id("alice") == coder.user_id("alice") != coder.user_id("bob")


@pytest.mark.parametrize(("error", "status", "message"), [
    (NotFound("task not found"), 404, coder.NOT_FOUND),
    (Unauthenticated("missing"), 401, coder.SIGNED_OUT),
    (TaskfnError("boom"), 500, "An internal error occurred."),
    (Conflict("Task is paused.", "Resume the task to send messages."), 409, "Task is paused."),
])
def test_the_error_body(error, status, message):
    answer = coder.error_response(error)
    body = json.loads(answer.body)
    assert answer.status_code == status and body["message"] == message
    assert set(body) <= {"message", "detail", "validations"}


def test_validations_travel_in_the_error_body():
    error = coder.with_validations(InvalidRequest("Invalid task search query."),
                                   [{"field": "q", "detail": "bad"}])
    body = json.loads(coder.error_response(error).body)
    assert body == {"message": "Invalid task search query.",
                    "validations": [{"field": "q", "detail": "bad"}]}


# --- the lifecycle's conversation moves ---------------------------------------------------

def _record(state: State, turn: int = 1, held: int = 0) -> dict:
    return {"task_guid": "t", "state": state.value, "turn": turn, "held_at": held,
            "cell_id": "", "first_completed_at": 5, "response_body": "old"}


def test_a_next_turn_only_from_the_finished_turn_read_and_not_held():
    from taskfn import lifecycle
    from taskfn.errors import InvalidStateTransition

    move = lifecycle.next_turn(1, 9, {"input_json": "{}"})
    moved = lifecycle.apply(move, _record(State.COMPLETED)).task
    assert moved["state"] == "Pending" and moved["turn"] == 2 and moved["retry_at"] == 9
    assert moved["first_completed_at"] is None and moved["response_body"] is None
    for record in (_record(State.COMPLETED, turn=2), _record(State.COMPLETED, held=3),
                   _record(State.RUNNING), _record(State.PENDING)):
        with pytest.raises(InvalidStateTransition):
            lifecycle.apply(move, record)
    assert (State.COMPLETED, State.PENDING) in lifecycle.ALLOWED


def test_hold_and_release_of_a_finished_turn():
    from taskfn import lifecycle
    from taskfn.errors import InvalidStateTransition

    held = lifecycle.apply(lifecycle.hold_turn(1, 7), _record(State.COMPLETED)).task
    assert held["held_at"] == 7 and held["state"] == "Completed"
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.hold_turn(1, 8), held)  # held already
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.hold_turn(1, 8), _record(State.RUNNING))
    edited = lifecycle.apply(lifecycle.edit_held(1, 8, {"initial_prompt": "x"}), held).task
    assert edited["initial_prompt"] == "x"
    released = lifecycle.apply(lifecycle.release_turn(9), held).task
    assert released["held_at"] is None
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.release_turn(9), _record(State.COMPLETED))
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.edit_held(1, 9, {}), _record(State.COMPLETED))
