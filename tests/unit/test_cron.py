"""The cron dialect schedules accept, and its EventBridge Scheduler form."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from taskfn import cron
from taskfn.errors import InvalidRequest
from taskfn.services.schedules import check_timezone, run_task_id


@pytest.mark.parametrize(("unix", "eventbridge"), [
    ("* * * * *", "cron(* * * * ? *)"),
    ("*/15 9-17 * * *", "cron(0/15 9-17 * * ? *)"),  # steps from the field's first value
    ("5,*/20 */6 */10 */3 *", "cron(5,0/20 0/6 1/10 1/3 ? *)"),
    ("0 0 1,15 * *", "cron(0 0 1,15 * ? *)"),  # day-of-month: day-of-week is ?
    ("30 6 * jan,Jul *", "cron(30 6 * JAN,JUL ? *)"),
    ("0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"),  # Monday-Friday: 2-6 from Sunday = 1
    ("0 9 * * 0", "cron(0 9 ? * 1 *)"),
    ("0 9 * * 7", "cron(0 9 ? * 1 *)"),  # 7 is Sunday too
    ("0 9 * * 5-7", "cron(0 9 ? * 1,6-7 *)"),  # Friday to Sunday wraps
    ("0 9 * * fri-sun", "cron(0 9 ? * 1,6-7 *)"),
    ("0 9 * * SAT,sun", "cron(0 9 ? * 1,7 *)"),
    ("0 9 * * */2", "cron(0 9 ? * 1,3,5,7 *)"),  # Sun, Tue, Thu, Sat
    ("0 9 * * 1-5/2", "cron(0 9 ? * 2,4,6 *)"),
    ("0 9 * * 0-6", "cron(0 9 ? * * *)"),
])
def test_unix_cron_maps_to_eventbridge(unix, eventbridge):
    assert cron.to_eventbridge(unix) == eventbridge


@pytest.mark.parametrize(("bad", "words"), [
    ("", "5-field"), ("* * * *", "5 fields, got 4"), ("0 * * * * *", "5 fields, got 6"),
    ("@hourly", "5 fields"), ("60 * * * *", "minute"), ("* 24 * * *", "hour"),
    ("* * 0 * *", "day-of-month"), ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"),
    ("0 0 L * *", "day-of-month"), ("0 0 15W * *", "day-of-month"),
    ("0 0 * * 5L", "day-of-week"), ("0 0 * * 1#2", "day-of-week"), ("0 0 ? * 1", "day-of"),
    ("0 0 * * mon-xyz", "day-of-week"), ("0 0 * foo *", "month"),
    ("0 0 1 * 1", "not both"),
])
def test_what_is_not_the_dialect_is_refused_saying_which_field(bad, words):
    with pytest.raises(InvalidRequest) as refused:
        cron.parse(bad)
    assert words in refused.value.message


def test_next_times_follow_the_zone_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 3, 27, 12, 0, tzinfo=berlin)  # DST starts on the 29th
    first, second = cron.next_times("0 9 * * *", after, 2)
    assert (first.hour, second.hour) == (9, 9)
    assert first.utcoffset() != second.utcoffset()


def test_timezones_are_iana_names():
    assert check_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("Mars/Olympus", "", "../etc/passwd", None, "x" * 65):
        with pytest.raises(InvalidRequest):
            check_timezone(bad)


def test_a_run_s_task_id_is_one_per_schedule_and_fire_time():
    one = run_task_id("6560f1a0dddddddddddddddd", "2026-12-02T10:15:00Z")
    assert one == run_task_id("6560f1a0dddddddddddddddd", "2026-12-02T10:15:00Z")
    assert len(one) == 24 and int(one, 16) >= 0
    assert one != run_task_id("6560f1a0dddddddddddddddd", "2026-12-02T10:20:00Z")
    assert one != run_task_id("6560f1a0eeeeeeeeeeeeeeee", "2026-12-02T10:15:00Z")
    with pytest.raises(InvalidRequest):
        run_task_id("6560f1a0dddddddddddddddd", "not a time")
