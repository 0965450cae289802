"""Public endpoints: a function made callable without a token (GreenCloud's endpoints).

The owner creates, reads, changes, lists and deletes them; anyone may call one
(`PublicService.call`), which runs a task of its function as its owner's, through TaskService
like any other create. A call is refused, in this order, when the endpoint's Origin list, IP
list or time window do not admit it (403), then when its daily limit is spent (429): the limit
is one conditional ADD on the endpoint's day count (stores/metrics.py `reserve`), so however
many calls race, no more than the limit pass. A task made by a call shows its result to anyone
for `public_result_seconds` after it finished, then only to its owner's token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from taskfn import ids, wiring
from taskfn.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    TaskfnError,
    TooManyRequests,
)
from taskfn.lifecycle import SECOND_NS
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.services.ownership import owned
from taskfn.services.tags import TagService
from taskfn.services.tasks import TaskResponse, TaskService
from taskfn.services.tokens import TokenService
from taskfn.settings import Settings, get_settings
from taskfn.stores.endpoints import EndpointRecord, EndpointStore
from taskfn.stores.metrics import FunctionMetrics, endpoint_counters
from taskfn.stores.records import FunctionStore
from taskfn.stores.tags import TagRecord

logger = logging.getLogger(__name__)
LIST_DEPTH_MAX = 10_000  # page × limit, as the build list


@dataclass(frozen=True)
class EndpointDetail:
    endpoint: EndpointRecord
    tags: dict[str, TagRecord]


@dataclass(frozen=True)
class EndpointPage:
    endpoints: list[EndpointRecord]
    total: int
    tags: dict[str, TagRecord]


def minutes(text: str) -> int:
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def within(window: dict[str, str], at_ns: int) -> bool:
    """Whether `at_ns` falls in [from, to) on the window's clock; a window whose `to` comes
    before its `from` wraps midnight (22:00-06:00 is the night)."""
    local = datetime.fromtimestamp(at_ns / SECOND_NS, UTC).astimezone(
        ZoneInfo(window["timezone"]))
    now, start, end = local.hour * 60 + local.minute, minutes(window["from"]), minutes(
        window["to"])
    return start <= now < end if start < end else (now >= start or now < end)


class EndpointService:
    def __init__(self, store: EndpointStore, functions: FunctionStore, *,
                 tags: TagService | None = None, metrics: FunctionMetrics | None = None):
        self.store = store
        self.functions = functions
        self.tags = tags or TagService.from_env()
        self.metrics = metrics or wiring.function_metrics()

    @classmethod
    def from_env(cls) -> EndpointService:
        return cls(EndpointStore(wiring.table()), wiring.functions())

    def create(self, caller: Caller, function_id: str, fields: dict[str, Any]) -> EndpointRecord:
        """An endpoint on one of the caller's functions, with tags of the caller's."""
        owned(self.functions.get, function_id, caller, "function")
        tags, _ = self.tags.check(caller, fields.get("tags", ()))
        record = EndpointRecord(id=ids.new_id(), owner=caller.user, function_id=function_id,
                                created_at=now_ns(), **{**fields, "tags": list(tags)})
        if not self.store.put_new(record):  # 8 random bytes in the id: never
            raise InvalidRequest("endpoint id taken; try again")
        return record

    def get(self, caller: Caller, endpoint_id: str) -> EndpointRecord:
        return owned(self.store.get, endpoint_id, caller, "endpoint")

    def detail(self, caller: Caller, endpoint_id: str) -> EndpointDetail:
        endpoint = self.get(caller, endpoint_id)
        return EndpointDetail(endpoint, self.tags.known(caller.user) if endpoint.tags else {})

    @contextmanager
    def owner_first(self, caller: Caller, endpoint_id: str) -> Iterator[None]:
        """A refused body (400, 413) of another owner's endpoint is its 404."""
        try:
            yield
        except (InvalidRequest, PayloadTooLarge):
            self.get(caller, endpoint_id)
            raise

    @contextmanager
    def owner_function_first(self, caller: Caller, function_id: str) -> Iterator[None]:
        """A refused create body on another owner's function is that function's 404."""
        try:
            yield
        except (InvalidRequest, PayloadTooLarge):
            owned(self.functions.get, function_id, caller, "function")
            raise

    def update(self, caller: Caller, endpoint_id: str, changes: dict[str, Any]) -> None:
        """The fields given, in one conditional write; `time_limit` None removes the window."""
        if not changes:
            raise InvalidRequest("nothing to change", "give description, tag, dailyLimit, "
                                 "origin, ip or timeLimit")
        if "tags" in changes:
            tags, _ = self.tags.check(caller, changes["tags"])
            changes = {**changes, "tags": list(tags)}
        if not ids.is_id(endpoint_id) or not self.store.update(endpoint_id, caller.user,
                                                               changes):
            raise NotFound("endpoint not found")

    def delete(self, caller: Caller, endpoint_id: str) -> None:
        """The endpoint and its counters; the tasks its calls made stay (their owner's)."""
        endpoint = self.get(caller, endpoint_id)
        if not self.store.delete(endpoint_id, caller.user):
            raise NotFound("endpoint not found")
        self.metrics.delete(endpoint.function_id, of=endpoint_counters(endpoint_id))

    def page(self, caller: Caller, *, page: int, limit: int,
             function_id: str | None = None) -> EndpointPage:
        """Page `page` of the caller's endpoints, or of one function of theirs (404
        otherwise), newest first, with the total (counted as the build list counts)."""
        if page * limit > LIST_DEPTH_MAX:
            raise InvalidRequest(f"page × limit must be at most {LIST_DEPTH_MAX}",
                                 "narrow the list to one function with functionId")
        if function_id is not None:
            owned(self.functions.get, function_id, caller, "function")
        endpoints, total = self.store.list_page(caller.user, page=page, limit=limit,
                                                function_id=function_id)
        tagged = any(endpoint.tags for endpoint in endpoints)
        return EndpointPage(endpoints, total, self.tags.known(caller.user) if tagged else {})

    def counters(self, caller: Caller, endpoint_id: str) -> dict[str, int]:
        """The endpoint's calls today (UTC) and in the last 7 days, and its unfinished tasks:
        one read of its counters."""
        endpoint = self.get(caller, endpoint_id)
        read = self.metrics.read(endpoint.function_id, now_ns(),
                                 of=endpoint_counters(endpoint_id))
        return {"todayTasks": read["todaysTasks"], "pendingTasks": read["pendingTasks"],
                "weekTasks": read["weekTasks"]}


@dataclass(frozen=True)
class PublicCall:
    """What a caller without a token sends, and where from (API Gateway's source IP)."""

    origin: str | None
    source_ip: str
    body: Any
    query: dict[str, str]
    size: int


class PublicService:
    """The two routes without a token: a call of an endpoint, and the result of a task one
    made."""

    def __init__(self, store: EndpointStore, tasks: TaskService, tokens: TokenService, *,
                 metrics: FunctionMetrics | None = None, settings: Settings | None = None):
        self.store = store
        self.tasks = tasks
        self.tokens = tokens
        self.metrics = metrics or wiring.function_metrics()
        self.settings = settings or get_settings()

    @classmethod
    def from_env(cls) -> PublicService:
        return cls(EndpointStore(wiring.table()), TaskService.from_env(),
                   TokenService.from_env())

    def call(self, endpoint_id: str, request: PublicCall, *, now: int | None = None
             ) -> TaskRecord:
        """A task of the endpoint's function, as its owner's, if the endpoint admits the call
        (see the module's docstring for the order of the checks)."""
        now = now_ns() if now is None else now
        endpoint = self.store.get(endpoint_id) if ids.is_id(endpoint_id) else None
        if endpoint is None:
            raise NotFound("endpoint not found")
        if endpoint.origin and (request.origin or "").rstrip("/").lower() not in endpoint.origin:
            raise Forbidden("origin not allowed", "this endpoint answers only its listed "
                            "origins")
        if endpoint.ip and request.source_ip not in endpoint.ip:
            raise Forbidden("address not allowed", "this endpoint answers only its listed "
                            "IP addresses")
        if endpoint.time_limit and not within(endpoint.time_limit, now):
            window = endpoint.time_limit
            raise Forbidden("outside the endpoint's time window",
                            f"calls are taken from {window['from']} to {window['to']} "
                            f"({window['timezone']})")
        self.tasks.check_size(request.size)
        counters = endpoint_counters(endpoint.id)
        if endpoint.daily_limit == 0 or not self.metrics.reserve(
                endpoint.function_id, now, endpoint.daily_limit, of=counters):
            raise TooManyRequests("daily limit reached",
                                  f"{endpoint.daily_limit} calls a day (UTC); try again "
                                  "tomorrow")
        owner = Caller(user=endpoint.owner, scope=Scope.USER)
        try:
            return self.tasks.create(owner, endpoint.function_id, body=request.body,
                                     query=request.query, size=request.size,
                                     endpoint_id=endpoint.id)
        except Exception as error:
            self.metrics.give_back(endpoint.function_id, now, of=counters)
            if isinstance(error, TaskfnError):  # to anyone: its message, not the owner's hints
                error.detail = None
            raise

    def result(self, task_id: str, authorization: str | None, *,
               now: int | None = None) -> TaskResponse:
        """The owner's token reads the result as /v1/task/{id}/result does. Anyone else
        reads it only for a task a public call made, for public_result_seconds after it
        finished; every other case is the same 404 as an unknown task (an unfinished public
        task's 404 says so, as /result does)."""
        now = now_ns() if now is None else now
        task = self.tasks.tasks.get(task_id) if ids.is_task_guid(task_id) else None
        if task is None or task.expired(now):
            raise NotFound("task not found")
        caller = self.tokens.authenticate(authorization) if authorization else None
        if caller is not None and caller.user == task.owner and caller.scope is not Scope.CELL:
            return self.tasks.response_of(task)
        if not task.endpoint_id:
            raise NotFound("task not found")
        if not task.finished:
            raise NotFound("task has not finished yet")
        closes = task.first_completed_at + self.settings.public_result_seconds * SECOND_NS
        if now > closes:
            raise NotFound("task not found", "a public result is readable without a token "
                           f"for {self.settings.public_result_seconds} s after the task "
                           "finished; then with the owner's token")
        return self.tasks.response_of(task, url_expires_s=max(1, (closes - now) // SECOND_NS))
