"""Schedule events: invoke each scheduled function every period, as EventBridge would.

One thread for every schedule of the template. The first invocation comes one period after
start, like a new EventBridge rule; a failing invocation is printed and the next one still
comes (EventBridge does not stop a rule either).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from typing import Any

from taskfn.local.provision import REGION
from taskfn.local.template import ScheduleSource, Template

ACCOUNT = "123456789012"


def build_schedule_event(function_id: str) -> dict[str, Any]:
    """The event a Schedule rule sends (EventBridge's "Scheduled Event")."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function_id}Schedule"],
        "detail": {},
    }


class Schedules:
    """Runs the template's Schedule events with an invoker (anything with `invoke`)."""

    def __init__(self, schedules: list[ScheduleSource], invoker: Any) -> None:
        self.schedules = list(schedules)
        self.invoker = invoker
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def of(cls, template: Template, invoker: Any) -> Schedules:
        return cls(template.schedules, invoker)

    def start(self) -> None:
        for schedule in self.schedules:
            thread = threading.Thread(
                target=self._run, args=(schedule,), name=f"taskfn-schedule-{schedule.function_id}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop firing and wait for a running invocation to end."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self, schedule: ScheduleSource) -> None:
        # Fixed rate from start, not from the end of the last run: a slow pass does not drift.
        due = time.monotonic() + schedule.period_s
        while not self.stop_event.wait(max(0.0, due - time.monotonic())):
            due += schedule.period_s
            try:
                self.invoker.invoke(schedule.function_id, build_schedule_event(
                    schedule.function_id))
            except Exception:
                sys.stderr.write(f"taskfn local: scheduled {schedule.function_id} failed\n")
                traceback.print_exc(file=sys.stderr)
            due = max(due, time.monotonic())  # skip runs missed while this one ran
