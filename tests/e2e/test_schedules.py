"""Schedules through the local stack over HTTP: a `* * * * *` Europe/Berlin schedule fires
by the local Scheduler stand-in (its check driven to the next minute, not waited for), a
double fire makes one task, `try` runs at once, and the CSV filtered by scheduleId shows the
schedule's tasks only."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from taskfn.local.stack import LocalStack

from .conftest import Client, in_process_stack

pytestmark = pytest.mark.e2e

ADMIN = "tfn_schedules-admin-token-0123456789"
SOURCE = "def handler(event, context):\n    return {'got': event['body'], 'q': event['query']}\n"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    with in_process_stack(ADMIN, "schedules", {}) as stack:
        yield stack


@pytest.fixture(scope="module")
def user(local: LocalStack) -> Client:
    answer = Client(local.url, ADMIN).request("POST", "/v1/tokens",
                                              {"user": "planner", "scope": "user"})
    assert answer.status == 201, answer
    return Client(local.url, answer.json()["token"])


def tasks_of(user: Client, function_id: str) -> list[dict]:
    answer = user.request("GET", f"/v1/task/list?functionId={function_id}&limit=100")
    assert answer.status == 200, answer
    return answer.json()


def csv_ids(user: Client, function_id: str, schedule_id: str) -> list[str]:
    answer = user.request("GET", f"/v1/task/{function_id}/csv?scheduleId={schedule_id}")
    assert answer.status == 200, answer
    return [row[0] for row in list(csv.reader(io.StringIO(answer.body.decode())))[1:]]


def test_a_schedule_fires_each_minute_in_its_zone_and_try_runs_now(local: LocalStack,
                                                                   user: Client):
    # The stand-in's clock held still: its background check fires nothing of its own, so the
    # test moves time on, not the wall clock.
    assert local.scheduler is not None
    start = datetime.now(UTC)
    local.scheduler.clock = lambda: start
    function_id = user.request("POST", "/v1/function", {"name": "tick", "source": SOURCE}
                               ).json()["id"]
    created = user.request("POST", "/v1/scheduled", {
        "functionId": function_id, "cron": "* * * * *", "timezone": "Europe/Berlin"})
    assert created.status == 201, created
    schedule_id = created.json()["id"]
    assert user.request("PUT", f"/v1/scheduled/{schedule_id}/payload?mode=cron",
                        {"n": 7}).status == 204
    other = user.request("POST", f"/v1/task/{function_id}", {"n": 0}).json()["id"]

    local.scheduler.tick()  # the schedule seen at `start`: it fires from the next minute on
    later = start + timedelta(minutes=1)  # (start, later] holds exactly one minute
    fired = local.scheduler.tick(later)
    assert [event["scheduleId"] for event in fired] == [schedule_id]
    fire_time = fired[0]["scheduledTime"]
    assert fire_time.endswith(":00Z")  # on the minute
    assert local.scheduler.tick(later) == []  # nothing new at the same time
    # Scheduler delivers at least once: the same fire again makes no second task.
    local.invoker.invoke("RunScheduleFunction", fired[0])

    tried = user.request("POST", f"/v1/scheduled/{schedule_id}/try")
    assert tried.status == 201, tried
    tried_id = tried.json()["id"]
    assert user.wait_result(tried_id).json() == {"got": {"n": 7}, "q": {"mode": "cron"}}

    deadline = time.monotonic() + 30
    while len(scheduled := [t for t in tasks_of(user, function_id) if t["id"] != other]) < 2:
        assert time.monotonic() < deadline, scheduled
        time.sleep(0.2)
    assert len(scheduled) == 2
    fired_id = next(t["id"] for t in scheduled if t["id"] != tried_id)
    assert user.wait_result(fired_id).json() == {"got": {"n": 7}, "q": {"mode": "cron"}}
    assert sorted(csv_ids(user, function_id, schedule_id)) == sorted([tried_id, fired_id])

    # Paused: the stand-in lists only ENABLED schedules, so nothing fires.
    assert user.request("PATCH", f"/v1/scheduled/{schedule_id}", {"active": False}
                        ).status == 204
    assert local.scheduler.tick(later + timedelta(minutes=5)) == []
    view = user.request("GET", f"/v1/scheduled/{schedule_id}").json()
    assert view["active"] is False and view["inlinePayload"]["query"] == {"mode": "cron"}
    assert user.request("DELETE", f"/v1/scheduled/{schedule_id}").status == 204
    assert user.request("GET", f"/v1/scheduled/{schedule_id}").status == 404
