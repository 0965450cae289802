"""IANA time zone names, as EventBridge Scheduler accepts them.

zoneinfo loads any file under the zone directory ("posix/Europe/Berlin", "right/UTC",
"localtime": the host's own zone), which Scheduler refuses and which mean different things on
different hosts; only the names tzdata lists are accepted."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones


@cache
def _names() -> frozenset[str]:
    return frozenset(name for name in available_timezones()
                     if not name.startswith(("posix/", "right/")) and name != "localtime")


def is_iana_zone(name: object) -> bool:
    return isinstance(name, str) and name in _names()
