"""EventBridge Scheduler's stand-in: fires every active schedule at each time of its cron, in
its timezone (a fastlane job's one-shot once, at its time), by invoking RunScheduleFunction
with the event Scheduler would send (the target's Input, stores/schedules.py
`target_input`, with the fire time filled in).

There is no Scheduler in the local stack (moto keeps schedules but fires none, and cannot
check the signatures of Scheduler requests once IAM is enforced), so the stack runs the
handlers without a Scheduler target and this reads the schedule records themselves: a Scan of
the local table for them at each check, which no request path does (local only). Every time
of a schedule's cron after the previous check, up to now, fires; a schedule first seen fires
from then on. `tick(now)` is one check at a given time, so a test need not wait a minute.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from taskfn.local.template import Template
from taskfn.stores.schedules import SCHEDULED_TIME, ScheduleRecord, target_input

TARGET = "RunScheduleFunction"
MAX_FIRES_PER_CHECK = 100  # a clock moved far ahead fires the latest, not a flood


def scheduled_time(when: datetime) -> str:
    """Scheduler's form of the fire time: UTC, seconds, Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_event(schedule: ScheduleRecord, when: datetime) -> dict[str, Any]:
    return json.loads(target_input(schedule).replace(SCHEDULED_TIME, scheduled_time(when)))


class LocalScheduler:
    def __init__(self, invoker: Any, *, schedules: Callable[[], list[ScheduleRecord]],
                 interval_s: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.invoker = invoker
        self.schedules = schedules
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, template: Template, invoker: Any, table_name: str,
           **options: Any) -> LocalScheduler | None:
        """None when the template has no RunScheduleFunction (nothing to fire)."""
        if TARGET not in template.functions:
            return None
        import boto3

        client = boto3.session.Session().client("dynamodb")
        return cls(invoker, schedules=lambda: scan_schedules(client, table_name), **options)

    def start(self) -> None:
        self._seen.clear()
        self.tick()  # every schedule there is, seen now
        self._thread = threading.Thread(target=self._run, name="taskfn-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:
                sys.stderr.write("taskfn local: the scheduler's check failed\n")
                traceback.print_exc(file=sys.stderr)

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """One check at `now` (the clock's by default): the events it fired."""
        now = now or self.clock()
        fired: list[dict[str, Any]] = []
        with self._lock:
            active = {s.id: s for s in self.schedules() if s.active}
            for schedule_id in set(self._seen) - set(active):
                del self._seen[schedule_id]  # paused or deleted: seen anew when back
            for schedule_id, schedule in active.items():
                if schedule.at:  # a job's one-shot: once, when due (its run removes it)
                    if schedule.at <= now.timestamp() and schedule_id not in self._seen:
                        self._seen[schedule_id] = now
                        fired += self._fire_at(schedule)
                    continue
                since = self._seen.get(schedule_id)
                self._seen[schedule_id] = max(now, since or now)
                if since is not None and since < now:
                    try:  # one schedule's fault never stops another owner's
                        fired += self._fire(schedule, since, now)
                    except Exception:
                        sys.stderr.write(f"taskfn local: schedule {schedule_id} skipped\n")
                        traceback.print_exc(file=sys.stderr)
        return fired

    def _fire_at(self, schedule: ScheduleRecord) -> list[dict[str, Any]]:
        event = run_event(schedule, datetime.fromtimestamp(int(schedule.at), UTC))
        try:
            self.invoker.invoke(TARGET, event)
        except Exception:
            sys.stderr.write(f"taskfn local: schedule {schedule.id} failed at {schedule.at}\n")
            traceback.print_exc(file=sys.stderr)
        return [event]

    def _fire(self, schedule: ScheduleRecord, since: datetime,
              now: datetime) -> list[dict[str, Any]]:
        times = croniter(schedule.cron, since.astimezone(ZoneInfo(schedule.timezone)))
        due: deque[datetime] = deque(maxlen=MAX_FIRES_PER_CHECK)
        while (at := times.get_next(datetime)) <= now:
            due.append(at)
        events = []
        for at in due:
            event = run_event(schedule, at)
            try:
                self.invoker.invoke(TARGET, event)
            except Exception:
                sys.stderr.write(f"taskfn local: schedule {schedule.id} failed at {at}\n")
                traceback.print_exc(file=sys.stderr)
            events.append(event)
        return events


def scan_schedules(client: Any, table_name: str) -> list[ScheduleRecord]:
    """Every schedule record of the local table (a Scan: local only, see above)."""
    from taskfn.stores.table import from_item

    found: list[ScheduleRecord] = []
    start: dict[str, Any] | None = None
    while True:
        page = client.scan(
            TableName=table_name,
            FilterExpression="(begins_with(PK, :o) OR begins_with(PK, :j)) AND "
                             "begins_with(SK, :s)",
            ExpressionAttributeValues={":o": {"S": "OWNER#"}, ":j": {"S": "FL#"},
                                       ":s": {"S": "SCHED#"}},
            **({"ExclusiveStartKey": start} if start else {}))
        found += [ScheduleRecord.model_validate(from_item(item)) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return found
