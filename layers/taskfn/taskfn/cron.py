"""Schedules' cron: the 5-field Unix dialect users write, checked, and its EventBridge
Scheduler form.

Accepted: `minute hour day-of-month month day-of-week`, each field `*`, numbers, ranges
`a-b`, lists `a,b` and steps `*/n`, `a-b/n`; month names JAN-DEC and day names SUN-SAT (any
case); day-of-week 0-7 with 0 and 7 both Sunday. Not accepted (400): macros (@daily), a
seconds or year field, Quartz's `?`, `L`, `W` and `#`, and a day-of-month and a day-of-week
both restricted (Unix runs on either day, EventBridge cannot say "either"), ranges that run
backwards (`59-0`), but for day-of-week's (`fri-sun`) not from 7 (`7-0`: croniter reads it
as every day), steps
longer than their field, and an expression that never fires (`0 0 31 2 *`).

EventBridge Scheduler's cron(min hour dom month dow year) differs in three ways, which
`to_eventbridge` bridges: one of dom and dow must be `?`; dow counts 1-7 from Sunday (Unix
0-6); and a year field (`*`). Steps from `*` are written from the field's first value
(`*/15` minutes as `0/15`, `*/2` months as `1/2`), the form EventBridge documents.
"""

from __future__ import annotations

import re
from datetime import datetime

from croniter import CroniterBadDateError, croniter

from taskfn.errors import InvalidRequest

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELD = re.compile(r"^[0-9A-Za-z*,/-]+$")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
           "DEC")
_MAX_LENGTH = 256
# Each field's values (day-of-week 7 is Sunday again).
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def parse(cron: str) -> list[str]:
    """The five fields of a valid Unix cron, or InvalidRequest saying what is wrong."""
    if not isinstance(cron, str) or not cron.strip() or len(cron) > _MAX_LENGTH:
        raise InvalidRequest("cron must be a 5-field Unix cron expression",
                             "e.g. '*/15 * * * *' (minute hour day-of-month month day-of-week)")
    fields = cron.split()
    if len(fields) != 5:
        raise InvalidRequest(
            f"cron must have 5 fields, got {len(fields)}",
            "minute hour day-of-month month day-of-week (no seconds, no year, no @macros)")
    for index, (name, field) in enumerate(zip(FIELDS, fields, strict=True)):
        names = {3: _MONTHS, 4: _DAYS}.get(index, ())
        words = re.findall(r"[A-Za-z]+", field)
        if not _FIELD.match(field) or any(word.upper() not in names for word in words):
            raise InvalidRequest(f"cron {name} field {field[:40]!r} is not valid",
                                 "use *, numbers, ranges a-b, lists a,b and steps /n")
    for name, index in (("minute", 0), ("hour", 1), ("day-of-month", 2), ("month", 3),
                        ("day-of-week", 4)):
        probe = ["*"] * 5
        probe[index] = fields[index]
        if not croniter.is_valid(" ".join(probe)):
            raise InvalidRequest(f"cron {name} field {fields[index][:40]!r} is not valid",
                                 "values out of range or malformed")
    for index, field in enumerate(fields):
        _check_items(FIELDS[index], field, *_BOUNDS[index], {3: _MONTHS}.get(index, _DAYS))
    if fields[2] != "*" and fields[4] != "*":
        raise InvalidRequest(
            "cron may restrict day-of-month or day-of-week, not both",
            "Unix cron runs on either day; EventBridge Scheduler cannot express that")
    try:
        croniter(" ".join(fields)).get_next(datetime)
    except CroniterBadDateError as error:
        raise InvalidRequest("cron never fires", "no date matches its day-of-month and month "
                             "(e.g. 31 February)") from error
    return fields


def _value(token: str, names: tuple[str, ...], low: int) -> int:
    upper = token.upper()
    if upper in names:
        return names.index(upper) + low if names is _MONTHS else names.index(upper)
    return int(upper)


def _check_items(name: str, field: str, low: int, high: int, names: tuple[str, ...]) -> None:
    """Ranges that go upward and steps no longer than the field: the cron both croniter and
    EventBridge read alike."""
    for item in field.split(","):
        span, _, step = item.partition("/")
        if step and not (step.isdigit() and 1 <= int(step) <= high - low + 1):
            raise InvalidRequest(f"cron {name} step {step[:20]!r} is not valid",
                                 f"a step is 1 to {high - low + 1} in this field")
        if "-" in span:
            first, last = span.split("-", 1)
            start, end = _value(first, names, low), _value(last, names, low)
            # Day-of-week wraps (fri-sun), as croniter and EventBridge agree; not from 7.
            wraps = names is _DAYS and start < 7
            if start > end and not wraps:
                raise InvalidRequest(f"cron {name} range {span[:40]!r} runs backwards",
                                     "write ranges upward, e.g. 50-59,0 (day-of-week 0 for "
                                     "Sunday)")


def _day_value(token: str) -> int:
    """A day as written: a name's index, or the number (7 stays 7 for a range's end)."""
    upper = token.upper()
    return _DAYS.index(upper) if upper in _DAYS else int(upper)


def unix_days(field: str) -> list[int]:
    """The Unix day-of-week field as the days it names, 0 (Sunday) to 6, sorted."""
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, last = span.split("-", 1)
            low, high = _day_value(first), _day_value(last)
            if high < low:  # fri-sun
                high += 7
        else:
            low = _day_value(span) % 7  # 7/2: from Sunday, as 0/2
            high = 6 if step_text else low
        days.update(value % 7 for value in range(low, high + 1, step))
    return sorted(days)


def _runs(values: list[int]) -> str:
    """1,2,3,5 as 1-3,5."""
    parts: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:  # type: ignore[list-item]
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def _steps_from_start(field: str, low: int) -> str:
    """`*/n` as `low/n`, the form EventBridge documents (the same times)."""
    return ",".join(f"{low}{item[1:]}" if item.startswith("*/") else item
                    for item in field.split(","))


def to_eventbridge(cron: str) -> str:
    """The Unix cron as EventBridge Scheduler's `cron(...)` ScheduleExpression."""
    minute, hour, dom, month, dow = parse(cron)
    minute, hour = _steps_from_start(minute, 0), _steps_from_start(hour, 0)
    dom, month = _steps_from_start(dom, 1), _steps_from_start(month, 1)
    if dow == "*":
        dom_out, dow_out = dom, "?"
    else:
        days = unix_days(dow)
        dom_out, dow_out = "?", "*" if len(days) == 7 else _runs([day + 1 for day in days])
    return f"cron({minute} {hour} {dom_out} {month.upper()} {dow_out} *)"


def next_times(cron: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` fire times after `after` (timezone-aware: in its zone)."""
    parse(cron)
    it = croniter(cron, after)
    return [it.get_next(datetime) for _ in range(count)]
