"""The local Scheduler stand-in: cron times in each schedule's zone, the event Scheduler
sends, schedules first seen or paused, a check after a long gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskfn.local.scheduler import MAX_FIRES_PER_CHECK, LocalScheduler
from taskfn.stores.schedules import ScheduleRecord


class Invoker:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def invoke(self, function_id: str, event: dict) -> None:
        self.events.append((function_id, event))


def record(cron: str, timezone: str, *, active: bool = True,
           schedule_id: str = "6560f1a0dddddddddddddddd") -> ScheduleRecord:
    return ScheduleRecord(id=schedule_id, owner="alice", function_id="f", cron=cron,
                          timezone=timezone, active=active, created_at=1)


def test_fires_at_the_zone_s_time_with_scheduler_s_event():
    schedules = [record("0 9 * * *", "Europe/Berlin"),
                 record("0 9 * * *", "America/New_York", schedule_id="6560f1a0eeeeeeeeeeeeeeee")]
    invoker = Invoker()
    local = LocalScheduler(invoker, schedules=lambda: schedules)
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert local.tick(start) == []  # first seen: nothing before it fires
    local.tick(start + timedelta(days=1))
    assert invoker.events == [
        ("RunScheduleFunction", {"scheduleId": "6560f1a0dddddddddddddddd", "owner": "alice",
                                 "scheduledTime": "2026-12-02T08:00:00Z"}),  # UTC+1
        ("RunScheduleFunction", {"scheduleId": "6560f1a0eeeeeeeeeeeeeeee", "owner": "alice",
                                 "scheduledTime": "2026-12-02T14:00:00Z"}),  # UTC-5
    ]


def test_paused_schedules_do_not_fire_and_resume_from_when_seen_again():
    schedules = [record("* * * * *", "UTC")]
    invoker = Invoker()
    local = LocalScheduler(invoker, schedules=lambda: schedules)
    start = datetime(2026, 12, 2, 10, 0, 30, tzinfo=UTC)
    local.tick(start)
    schedules[0] = record("* * * * *", "UTC", active=False)
    assert local.tick(start + timedelta(minutes=5)) == []
    schedules[0] = record("* * * * *", "UTC")
    assert local.tick(start + timedelta(minutes=6)) == []  # seen anew
    fired = local.tick(start + timedelta(minutes=8))
    assert [e["scheduledTime"] for e in fired] == ["2026-12-02T10:07:00Z",
                                                   "2026-12-02T10:08:00Z"]


def test_a_long_gap_fires_the_latest_times_only():
    invoker = Invoker()
    local = LocalScheduler(invoker, schedules=lambda: [record("* * * * *", "UTC")])
    start = datetime(2026, 12, 2, tzinfo=UTC)
    local.tick(start)
    fired = local.tick(start + timedelta(days=1))
    assert len(fired) == MAX_FIRES_PER_CHECK
    assert fired[-1]["scheduledTime"] == "2026-12-03T00:00:00Z"
