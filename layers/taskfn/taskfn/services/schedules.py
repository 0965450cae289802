"""Schedules: a function run as a task at each time of a cron in a timezone.

The record (stores/schedules.py) is the truth the API reads; each one has an EventBridge
Scheduler schedule whose target, RunScheduleFunction, calls `run` with the schedule's id,
owner and fire time. The record is written before its Scheduler schedule and removed after
it, so a schedule that fires always has its record (a failed Scheduler call on create removes
the record again and answers the error).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskfn import aws, cron, ids, wiring
from taskfn.adapters.greencloud import parse_task_body
from taskfn.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, TaskfnError
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.services.ownership import owned
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.records import FunctionStore
from taskfn.stores.schedules import ScheduleRecord, SchedulerSchedules, ScheduleStore
from taskfn.timezones import is_iana_zone

logger = logging.getLogger(__name__)
DESCRIPTION_MAX = 256
PAYLOAD_MAX_BYTES = 64 * 1024  # kept in the schedule's item (DynamoDB items stop at 400 KB)
LIST_DEPTH_MAX = 10_000

# How often a PATCH sends its schedule to Scheduler again while other PATCHes change it.
SYNC_ATTEMPTS = 3


def check_timezone(name: Any) -> str:
    """An IANA zone name (Europe/Berlin, UTC), or 400."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidRequest("timezone must be an IANA time zone name", "e.g. Europe/Berlin")
    if not is_iana_zone(name):
        raise InvalidRequest(f"unknown timezone {name[:64]!r}",
                             "use an IANA time zone name, e.g. Europe/Berlin or UTC")
    return name


def run_task_id(schedule_id: str, fire_time: str) -> str:
    """The task id of one fire of a schedule, the same for every delivery of it: the fire
    time's seconds (ids stay time-ordered) and 8 bytes of a hash of both."""
    try:
        seconds = int(datetime.fromisoformat(fire_time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise InvalidRequest(f"bad scheduled time {fire_time[:40]!r}") from None
    digest = hashlib.sha256(f"{schedule_id}#{fire_time}".encode()).hexdigest()
    return seconds.to_bytes(4, "big").hex() + digest[:16]


@dataclass(frozen=True)
class SchedulePage:
    schedules: list[ScheduleRecord]
    total: int


class ScheduleService:
    def __init__(self, store: ScheduleStore, functions: FunctionStore,
                 scheduler: SchedulerSchedules, tasks: TaskService | None = None):
        self.store = store
        self.functions = functions
        self.scheduler = scheduler
        self._tasks = tasks

    @classmethod
    def from_env(cls) -> ScheduleService:
        settings = get_settings()
        scheduler = SchedulerSchedules(
            aws.LazyClient("scheduler"), group=settings.schedule_group_name,
            target_arn=settings.schedule_target_arn, role_arn=settings.schedule_role_arn)
        return cls(ScheduleStore(wiring.table()), wiring.functions(), scheduler)

    @property
    def tasks(self) -> TaskService:
        if self._tasks is None:
            self._tasks = TaskService.from_env()
        return self._tasks

    def create(self, caller: Caller, fields: dict[str, Any]) -> ScheduleRecord:
        """fields: function_id, cron, timezone, description (checked by the adapter)."""
        owned(self.functions.get, fields["function_id"], caller, "function")
        expression = cron.to_eventbridge(fields["cron"])
        check_timezone(fields["timezone"])
        record = ScheduleRecord(id=ids.new_id(), owner=caller.user, created_at=now_ns(),
                                **fields)
        if not self.store.put_new(record):
            raise Conflict("schedule id taken; try again")
        try:
            self.scheduler.create(record, expression)
        except Exception:
            self.store.delete(caller.user, record.id)
            raise
        return record

    def get(self, caller: Caller, schedule_id: str) -> ScheduleRecord:
        return owned(lambda key: self.store.get(caller.user, key), schedule_id, caller,
                     "schedule")

    def update(self, caller: Caller, schedule_id: str, changes: dict[str, Any]) -> None:
        """The record, then its Scheduler schedule sent again whole."""
        if not changes:
            raise InvalidRequest("nothing to change",
                                 "give active, cron, timezone or description")
        current = self.get(caller, schedule_id)
        checked = current.model_copy(update=changes)
        cron.to_eventbridge(checked.cron)
        check_timezone(checked.timezone)
        written = self.store.update(caller.user, schedule_id, changes)
        if written is None:
            raise NotFound("schedule not found")
        self._sync(caller.user, written)

    def _sync(self, owner: str, sent: ScheduleRecord) -> None:
        """Scheduler given the record as written, then as it is now while it changed
        meanwhile: of two PATCHes that race, the later's send (or re-send) is the last."""
        for _ in range(SYNC_ATTEMPTS):
            self.scheduler.update(sent, cron.to_eventbridge(sent.cron))
            now = self.store.get(owner, sent.id)
            if now is None or now == sent:
                return
            sent = now
        logger.warning("schedule %s kept changing while it was sent to Scheduler", sent.id)

    def list(self, caller: Caller, *, page: int, limit: int, function_id: str | None,
             timezone: str | None) -> SchedulePage:
        """Newest first. By function alone: a page of its index. Otherwise the owner's
        partition (one Query a 500), filtered by function and zone."""
        if page * limit > LIST_DEPTH_MAX:
            raise InvalidRequest("page too deep", f"page × limit at most {LIST_DEPTH_MAX}")
        if function_id is not None:
            owned(self.functions.get, function_id, caller, "function")
            if timezone is None:
                return SchedulePage(*self.store.of_function_page(function_id, page=page,
                                                                 limit=limit))
        found = [s for s in self.store.of_owner(caller.user)
                 if (function_id is None or s.function_id == function_id)
                 and (timezone is None or s.timezone == timezone)]
        start = (page - 1) * limit
        return SchedulePage(found[start:start + limit], len(found))

    def set_payload(self, caller: Caller, schedule_id: str, body: bytes,
                    query: dict[str, str], content_type: str | None) -> None:
        self.get(caller, schedule_id)  # another owner's: 404 before any 413
        if len(body) > PAYLOAD_MAX_BYTES:
            raise PayloadTooLarge("payload too large", f"at most {PAYLOAD_MAX_BYTES} bytes")
        parse_task_body(body, content_type)  # refused now (400), not at every run
        if self.store.update(caller.user, schedule_id, {
                "payload_body": base64.b64encode(body).decode(),
                "payload_query": json.dumps(query, sort_keys=True),
                "payload_content_type": content_type or ""}) is None:
            raise NotFound("schedule not found")

    def delete(self, caller: Caller, schedule_id: str) -> None:
        """The Scheduler schedule first: nothing fires for a schedule whose record is gone."""
        self.get(caller, schedule_id)
        self.scheduler.delete(schedule_id)
        if not self.store.delete(caller.user, schedule_id):
            raise NotFound("schedule not found")

    def remove_of_function(self, function_id: str) -> int:
        """With its function: each of its schedules (Scheduler's first, then the record), so
        nothing fires for a function that is gone."""
        removed = 0
        for owner, schedule_id in self.store.of_function(function_id):
            self.scheduler.delete(schedule_id)
            removed += bool(self.store.delete(owner, schedule_id))
        return removed

    def _task(self, schedule: ScheduleRecord, task_id: str | None) -> TaskRecord:
        body = base64.b64decode(schedule.payload_body)
        caller = Caller(user=schedule.owner, scope=Scope.USER)
        return self.tasks.create(
            caller, schedule.function_id,
            body=parse_task_body(body, schedule.payload_content_type or None),
            query=schedule.query, size=len(body), schedule_id=schedule.id, task_id=task_id)

    def try_now(self, caller: Caller, schedule_id: str) -> TaskRecord:
        """A task of the schedule's function and payload now (a paused function: 409)."""
        return self._task(self.get(caller, schedule_id), None)

    def run(self, schedule_id: str, owner: str, fire_time: str) -> TaskRecord | None:
        """One fire of a schedule (RunScheduleFunction). None, logged, when the schedule is
        gone or inactive, or its function is gone, paused or cannot run: a run nobody waits
        for has no one to answer, and raising would only make Scheduler retry it."""
        if not ids.is_id(schedule_id):
            logger.warning("schedule run with a bad id %r", schedule_id[:64])
            return None
        schedule = self.store.get(owner, schedule_id)
        if schedule is None or not schedule.active:
            logger.warning("schedule %s is gone or inactive: run at %s skipped", schedule_id,
                           fire_time)
            return None
        try:
            return self._task(schedule, run_task_id(schedule_id, fire_time))
        except TaskfnError as error:
            logger.warning("schedule %s run at %s refused: %s", schedule_id, fire_time,
                           error.message)
            return None
