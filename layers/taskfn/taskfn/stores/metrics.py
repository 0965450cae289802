"""A function's task counters (GreenCloud's function metrics: todaysTasks, pendingTasks,
weekTasks, completedTasks), kept by atomic ADDs as its tasks are created and finish, so that
reading them is one GetItem, never a count of records.

One item per function, beside the function's own ("FUNC#<id>" / "METRICS"): `pending` and
`completed` totals, and one attribute per UTC day, "d<yyyymmdd>", of the tasks created that
day. Each create also removes the day attributes 8 to 40 days old, so the item stays a few
hundred bytes (one write unit) whatever the function's age. A counter is an ADD after the
task's own write, not part of it: a writer that dies in between leaves a count off by one,
never a task lost or a transition refused.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskfn.lifecycle import SECOND_NS
from taskfn.stores.table import Table

logger = logging.getLogger(__name__)

METRICS = "METRICS"
WEEK_DAYS = 7
PRUNE_FROM_DAYS, PRUNE_TO_DAYS = WEEK_DAYS + 1, 40


def day_attribute(at_ns: int, days_before: int = 0) -> str:
    day = datetime.fromtimestamp(at_ns / SECOND_NS, UTC) - timedelta(days=days_before)
    return f"d{day:%Y%m%d}"


class FunctionMetrics:
    def __init__(self, table: Table):
        self.table = table

    def created(self, function_id: str, at_ns: int) -> None:
        """One task more, pending, created on `at_ns`'s day."""
        stale = tuple(day_attribute(at_ns, n) for n in range(PRUNE_FROM_DAYS, PRUNE_TO_DAYS))
        self._add(function_id, {"pending": 1, day_attribute(at_ns): 1}, remove=stale)

    def finished(self, function_id: str) -> None:
        """One task less pending, one more completed (whatever its outcome)."""
        self._add(function_id, {"pending": -1, "completed": 1})

    def _add(self, function_id: str, amounts: dict[str, int], remove: tuple[str, ...] = ()) -> None:
        try:
            self.table.update(f"FUNC#{function_id}", METRICS, set_values={}, remove=remove,
                              add_values=amounts, condition=None)
        except (ClientError, BotoCoreError):  # a count, not a task: never fail the write
            logger.warning("metrics of function %s not counted", function_id, exc_info=True)

    def read(self, function_id: str, now: int) -> dict[str, int]:
        """GreenCloud's metrics object for the function, as of `now` (ns)."""
        item: dict[str, Any] = self.table.get(f"FUNC#{function_id}", METRICS) or {}
        week = sum(int(item.get(day_attribute(now, n), 0)) for n in range(WEEK_DAYS))
        return {
            "todaysTasks": int(item.get(day_attribute(now), 0)),
            "pendingTasks": max(0, int(item.get("pending", 0))),
            "weekTasks": week,
            "completedTasks": int(item.get("completed", 0)),
        }

    def delete(self, function_id: str) -> None:
        """With the function: its counters go too."""
        self.table.remove(f"FUNC#{function_id}", METRICS)
