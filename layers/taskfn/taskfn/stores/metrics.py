"""A function's task counters (GreenCloud's function metrics: todaysTasks, pendingTasks,
weekTasks, completedTasks), kept by atomic ADDs as its tasks are created and finish, so that
reading them is one GetItem, never a count of records.

One item per function, beside the function's own ("FUNC#<id>" / "METRICS"): `pending` and
`completed` totals, and one attribute per UTC day, "d<yyyymmdd>", of the tasks created that
day. Each create also removes the day attributes 8 to 40 days old, so the item stays a few
hundred bytes (one write unit) whatever the function's age. A counter is an ADD after the
task's own write, not part of it: a writer that dies in between leaves a count off by one,
never a task lost or a transition refused.

The platform metrics of an owner (GET /v1/metrics) add up their functions' items: each is on
GSI1 as "OWNER#<user>#METRICS" / "<function id>" (written once, with the function; an ADD
changes no projected attribute, so it writes no index entry): one Query and one BatchGetItem,
however many tasks. Builds in progress are one counter of the owner's, "OWNER#<user>#METRICS"
/ "BUILDS" (+1 when a build starts, -1 when it ends, in its request).

A public endpoint's counters (stores/endpoints.py) are the same item shape beside its function
("FUNC#<function id>" / "METRICS#ENDPOINT#<endpoint id>", `of`): the roles that count a
function's finished tasks count an endpoint's with the rights they have. Its day attribute is
also the daily limit's count (`reserve`: one conditional ADD).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
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


# Counts gathered by `FunctionMetrics.gathered` in this thread (or task): (function id, item)
# -> (amounts, attributes to remove).
_gathering: contextvars.ContextVar[dict[tuple[str, str], tuple[dict[str, int], set[str]]] | None]
_gathering = contextvars.ContextVar("metrics_gathering", default=None)


class FunctionMetrics:
    def __init__(self, table: Table):
        self.table = table

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """Within it, this thread's counts are added up and written at the end, one ADD per
        counters item: the executor's batch of tasks of one function costs one write unit
        for their counts instead of one a task. Counts of a batch cut off by a crash are
        lost with it (off by the batch, never a task)."""
        gathered: dict[tuple[str, str], tuple[dict[str, int], set[str]]] = {}
        token = _gathering.set(gathered)
        try:
            yield
        finally:
            _gathering.reset(token)
            for (function_id, of), (amounts, remove) in gathered.items():
                amounts = {name: n for name, n in amounts.items() if n}
                remove = remove - amounts.keys()
                if amounts or remove:
                    self._add(function_id, amounts, tuple(sorted(remove)), of=of)

    def created(self, function_id: str, at_ns: int, *, of: str = METRICS) -> None:
        """One task more, pending, created on `at_ns`'s day."""
        self._add(function_id, {"pending": 1, day_attribute(at_ns): 1}, remove=_stale(at_ns),
                  of=of)

    def reserve(self, function_id: str, at_ns: int, limit: int, *, of: str) -> bool:
        """One task more on `at_ns`'s day, as `created`, unless that day has `limit` already:
        one conditional ADD, so concurrent callers never pass the limit (-1: no limit)."""
        day = day_attribute(at_ns)
        condition, values = None, None
        if limit >= 0:
            condition, values = "attribute_not_exists(#d) OR #d < :c_limit", {"limit": limit}
        ok, _ = self.table.update(
            f"FUNC#{function_id}", of, set_values={}, remove=_stale(at_ns),
            add_values={"pending": 1, day: 1}, condition=condition, condition_values=values,
            condition_names={"#d": day} if condition else None)
        return ok

    def give_back(self, function_id: str, at_ns: int, *, of: str) -> None:
        """A reservation whose task was not created after all."""
        self._add(function_id, {"pending": -1, day_attribute(at_ns): -1}, of=of)

    def finished(self, function_id: str, *, of: str = METRICS) -> None:
        """One task less pending, one more completed (whatever its outcome)."""
        self._add(function_id, {"pending": -1, "completed": 1}, of=of)

    def _add(self, function_id: str, amounts: dict[str, int], remove: tuple[str, ...] = (),
             *, of: str = METRICS) -> None:
        gathering = _gathering.get()
        if gathering is not None:
            added, removed = gathering.setdefault((function_id, of), ({}, set()))
            for name, amount in amounts.items():
                added[name] = added.get(name, 0) + amount
            removed.update(name for name in remove if name not in added)
            return
        try:
            self.table.update(f"FUNC#{function_id}", of, set_values={}, remove=remove,
                              add_values=amounts, condition=None)
        except (ClientError, BotoCoreError):  # a count, not a task: never fail the write
            logger.warning("metrics of function %s not counted", function_id, exc_info=True)

    def read(self, function_id: str, now: int, *, of: str = METRICS) -> dict[str, int]:
        """GreenCloud's metrics object for the function, as of `now` (ns)."""
        item: dict[str, Any] = self.table.get(f"FUNC#{function_id}", of) or {}
        week = sum(int(item.get(day_attribute(now, n), 0)) for n in range(WEEK_DAYS))
        return {
            "todaysTasks": int(item.get(day_attribute(now), 0)),
            "pendingTasks": max(0, int(item.get("pending", 0))),
            "weekTasks": week,
            "completedTasks": int(item.get("completed", 0)),
        }

    def delete(self, function_id: str, *, of: str = METRICS) -> None:
        """With the function (or the endpoint): its counters go too."""
        self.table.remove(f"FUNC#{function_id}", of)


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#METRICS"


BUILDS = "BUILDS"
# The functions whose counters a platform metrics read adds up, at most.
OWNER_FUNCTIONS_MAX = 1000


class OwnerMetrics:
    """An owner's counters, added up from their functions' (see the module's docstring)."""

    def __init__(self, table: Table):
        self.table = table

    def register(self, function_id: str, owner: str) -> None:
        """The function's counters joined to its owner's, at the function's create (a
        failure leaves them out of the platform metrics, never the function unmade)."""
        try:
            self.table.update(f"FUNC#{function_id}", METRICS, condition=None, set_values={
                "GSI1PK": owner_partition(owner), "GSI1SK": function_id})
        except (ClientError, BotoCoreError):
            logger.warning("function %s not joined to %s's metrics", function_id, owner,
                           exc_info=True)

    def building(self, owner: str, amount: int) -> None:
        try:
            self.table.update(owner_partition(owner), BUILDS, set_values={},
                              add_values={"building": amount}, condition=None)
        except (ClientError, BotoCoreError):  # a count, not a build: never fail the build
            logger.warning("builds of %s not counted", owner, exc_info=True)

    def read(self, owner: str, now: int) -> dict[str, int]:
        """{pendingTasks, pendingBuilds, todayTasks, completedTasks} of the owner's functions."""
        page = self.table.query("GSI1", owner_partition(owner), limit=OWNER_FUNCTIONS_MAX)
        keys = [(str(item["PK"]), METRICS) for item in page.items]
        items = self.table.get_many(keys) if keys else []
        today = day_attribute(now)
        builds = self.table.get(owner_partition(owner), BUILDS) or {}
        return {
            "pendingTasks": sum(max(0, int(item.get("pending", 0))) for item in items),
            "pendingBuilds": max(0, int(builds.get("building", 0))),
            "todayTasks": sum(int(item.get(today, 0)) for item in items),
            "completedTasks": sum(int(item.get("completed", 0)) for item in items),
        }


def endpoint_counters(endpoint_id: str) -> str:
    """The sort key of a public endpoint's counters, beside its function's."""
    return f"{METRICS}#ENDPOINT#{endpoint_id}"


def _stale(at_ns: int) -> tuple[str, ...]:
    return tuple(day_attribute(at_ns, n) for n in range(PRUNE_FROM_DAYS, PRUNE_TO_DAYS))
