"""Schedules against moto: the record and its EventBridge Scheduler schedule kept together
(expression, timezone, state), runs that make one task per fire time however often Scheduler
delivers, the list's paging, and 400s and 404s."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from taskfn import wiring
from taskfn.adapters import greencloud_schedules as adapter
from taskfn.errors import Conflict, InvalidRequest, NotFound
from taskfn.models import FunctionRecord, now_ns
from taskfn.services.schedules import ScheduleService, run_task_id
from taskfn.settings import get_settings

from .helpers import ALICE, BOB

FID = "6560f1a0aaaaaaaaaaaaaaaa"


def function(function_id: str = FID, owner: str = "alice", *, paused: bool = False) -> None:
    wiring.functions().put_new(FunctionRecord(
        id=function_id, owner=owner, name="f", created_at=now_ns(), lang="http",
        url="http://127.0.0.1:9/", paused=paused))


def scheduler_schedule(schedule_id: str) -> dict:
    return boto3.client("scheduler").get_schedule(
        Name=schedule_id, GroupName=get_settings().schedule_group_name)


def new(service: ScheduleService, **fields) -> str:
    body = {"functionId": FID, "cron": "*/5 * * * 1-5", "timezone": "Europe/Berlin", **fields}
    return service.create(ALICE, adapter.parse_new_schedule(body)).id


@pytest.fixture
def service(backend) -> ScheduleService:
    function()
    return ScheduleService.from_env()


def test_create_patch_delete_keep_the_scheduler_schedule_in_step(service):
    schedule_id = new(service, description="weekdays")
    made = scheduler_schedule(schedule_id)
    assert made["ScheduleExpression"] == "cron(0/5 * ? * 2-6 *)"
    assert made["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert made["State"] == "ENABLED"
    assert made["Target"]["Arn"] == get_settings().schedule_target_arn
    assert made["Target"]["RoleArn"] == get_settings().schedule_role_arn
    assert json.loads(made["Target"]["Input"]) == {
        "scheduleId": schedule_id, "owner": "alice",
        "scheduledTime": "<aws.scheduler.scheduled-time>"}
    view = adapter.schedule_view(service.get(ALICE, schedule_id))
    assert view == {"active": True, "functionId": FID, "cron": "*/5 * * * 1-5",
                    "timezone": "Europe/Berlin", "description": "weekdays",
                    "inlinePayload": {"query": {}, "body": "", "contentType": ""}}

    service.update(ALICE, schedule_id, adapter.parse_schedule_patch(
        {"active": False, "cron": "0 9 * * *", "timezone": "America/New_York"}))
    changed = scheduler_schedule(schedule_id)
    assert changed["ScheduleExpression"] == "cron(0 9 * * ? *)"
    assert changed["ScheduleExpressionTimezone"] == "America/New_York"
    assert changed["State"] == "DISABLED"
    assert service.get(ALICE, schedule_id).active is False

    service.delete(ALICE, schedule_id)
    with pytest.raises(Exception) as gone:
        scheduler_schedule(schedule_id)
    assert "ResourceNotFound" in str(gone.value)
    with pytest.raises(NotFound):
        service.get(ALICE, schedule_id)


@pytest.mark.parametrize(("cron", "words"), [
    ("* * * *", "5 fields"), ("61 * * * *", "minute"), ("0 0 L * *", "day-of-month"),
    ("0 0 1 * 1", "not both"), ("@daily", "5 fields"), ("0 0 * * 1#2", "day-of-week")])
def test_a_bad_cron_is_a_400_saying_what_is_wrong_and_makes_nothing(service, cron, words):
    with pytest.raises(InvalidRequest) as refused:
        new(service, cron=cron)
    assert words in refused.value.message
    assert service.list(ALICE, page=1, limit=10, function_id=None, timezone=None).total == 0


def test_an_unknown_timezone_or_bad_fields_are_400(service):
    with pytest.raises(InvalidRequest, match="unknown timezone"):
        new(service, timezone="Mars/Olympus")
    with pytest.raises(InvalidRequest):
        new(service, description="x" * 257)
    with pytest.raises(InvalidRequest):
        adapter.parse_new_schedule({"functionId": FID, "cron": "* * * * *"})  # no timezone
    schedule_id = new(service)
    with pytest.raises(InvalidRequest, match="unknown timezone"):
        service.update(ALICE, schedule_id, {"timezone": "Nowhere/Else"})
    with pytest.raises(InvalidRequest, match="nothing to change"):
        service.update(ALICE, schedule_id, {})
    with pytest.raises(InvalidRequest):
        adapter.parse_schedule_patch({"active": "yes"})
    assert scheduler_schedule(schedule_id)["ScheduleExpressionTimezone"] == "Europe/Berlin"


def test_another_owner_s_schedules_and_functions_are_404(service):
    schedule_id = new(service)
    for call in (lambda: service.get(BOB, schedule_id),
                 lambda: service.update(BOB, schedule_id, {"active": False}),
                 lambda: service.delete(BOB, schedule_id),
                 lambda: service.try_now(BOB, schedule_id),
                 lambda: service.set_payload(BOB, schedule_id, b"{}", {}, None),
                 lambda: service.get(ALICE, "not-an-id")):
        with pytest.raises(NotFound):
            call()
    function("6560f1a0ffffffffffffffff", owner="bob")
    with pytest.raises(NotFound):
        new(service, functionId="6560f1a0ffffffffffffffff")
    assert scheduler_schedule(schedule_id)["State"] == "ENABLED"


def test_a_double_fire_makes_one_task_carrying_the_schedule_and_its_payload(service):
    schedule_id = new(service)
    service.set_payload(ALICE, schedule_id, b'{"n": 1}', {"mode": "nightly"},
                        "application/json")
    payload = adapter.schedule_view(service.get(ALICE, schedule_id))["inlinePayload"]
    assert payload == {"query": {"mode": "nightly"},
                       "body": base64.b64encode(b'{"n": 1}').decode(),
                       "contentType": "application/json"}
    first = service.run(schedule_id, "alice", "2026-12-02T10:15:00Z")
    again = service.run(schedule_id, "alice", "2026-12-02T10:15:00Z")
    assert first is not None and again is not None
    assert first.task_guid == again.task_guid == run_task_id(schedule_id,
                                                             "2026-12-02T10:15:00Z")
    task = wiring.tasks().get(first.task_guid, consistent=True)
    assert task.schedule_id == schedule_id
    assert task.input == {"body": {"n": 1}, "query": {"mode": "nightly"}}
    later = service.run(schedule_id, "alice", "2026-12-02T10:20:00Z")
    assert later.task_guid != first.task_guid


def test_runs_of_a_paused_function_inactive_or_gone_schedule_are_refused_cleanly(service,
                                                                                 caplog):
    schedule_id = new(service)
    service.update(ALICE, schedule_id, {"active": False})
    assert service.run(schedule_id, "alice", "2026-12-02T10:15:00Z") is None
    service.update(ALICE, schedule_id, {"active": True})
    function("6560f1a0eeeeeeeeeeeeeeee", paused=True)
    paused = new(service, functionId="6560f1a0eeeeeeeeeeeeeeee")
    assert service.run(paused, "alice", "2026-12-02T10:15:00Z") is None
    assert "function is paused" in caplog.text
    with pytest.raises(Conflict):
        service.try_now(ALICE, paused)
    assert service.run(schedule_id, "bob", "2026-12-02T10:15:00Z") is None  # not bob's
    assert service.run(schedule_id, "alice", "garbage") is None
    assert service.run("nope", "alice", "2026-12-02T10:15:00Z") is None


def test_try_runs_now_with_the_schedule_id(service):
    schedule_id = new(service)
    task = service.try_now(ALICE, schedule_id)
    assert wiring.tasks().get(task.task_guid, consistent=True).schedule_id == schedule_id
    assert service.try_now(ALICE, schedule_id).task_guid != task.task_guid


def test_the_list_pages_filters_and_bounds(service):
    function("6560f1a0eeeeeeeeeeeeeeee")
    made = [new(service) for _ in range(4)]
    made += [new(service, functionId="6560f1a0eeeeeeeeeeeeeeee", timezone="UTC")]
    newest = made[::-1]
    page = service.list(ALICE, **adapter.parse_schedule_list({"limit": "3", "page": "2"}))
    assert [s.id for s in page.schedules] == newest[3:5] and page.total == 5
    beyond = service.list(ALICE, **adapter.parse_schedule_list({"limit": "3", "page": "3"}))
    assert beyond.schedules == [] and beyond.total == 5
    only = service.list(ALICE, **adapter.parse_schedule_list({"timezone": "UTC"}))
    assert [s.id for s in only.schedules] == made[4:]
    # By function: a page of its index (newest first), its total counted there.
    by_function = service.list(ALICE, **adapter.parse_schedule_list(
        {"functionId": FID, "limit": "3", "page": "2"}))
    assert [s.id for s in by_function.schedules] == newest[4:] and by_function.total == 4
    both = service.list(ALICE, **adapter.parse_schedule_list(
        {"functionId": FID, "timezone": "UTC"}))
    assert both.schedules == [] and both.total == 0
    with pytest.raises(NotFound):
        service.list(BOB, **adapter.parse_schedule_list({"functionId": FID}))
    with pytest.raises(InvalidRequest, match="too deep"):
        service.list(ALICE, page=11, limit=999, function_id=None, timezone=None)
    assert service.list(BOB, page=1, limit=10, function_id=None, timezone=None).total == 0
    for params in ({"limit": "2"}, {"limit": "1000"}, {"page": "0"}, {"page": "x"}):
        with pytest.raises(InvalidRequest):
            adapter.parse_schedule_list(params)
    assert adapter.parse_schedule_list({}) == {"page": 1, "limit": 10, "function_id": None,
                                               "timezone": None}
