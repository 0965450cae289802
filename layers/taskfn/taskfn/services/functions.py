"""Functions: register, read, list (by tag too), change, pause, capabilities, delete. Code
arrives through builds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import ids, wiring
from taskfn.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, TaskfnError
from taskfn.models import Caller, Capabilities, FunctionRecord, now_ns
from taskfn.services.builds import BuildService
from taskfn.services.holds import HoldService
from taskfn.services.ownership import owned
from taskfn.services.tags import TagService
from taskfn.settings import Settings, get_settings
from taskfn.stores.metrics import FunctionMetrics
from taskfn.stores.records import FunctionStore
from taskfn.stores.tags import TagMemberships, TagRecord

logger = logging.getLogger(__name__)

# Writes of a function that retry when another changed it meanwhile (tags, pause).
ATTEMPTS = 3
PRIVILEGED_REFUSED = "privileged work is not allowed on this platform"


@dataclass(frozen=True)
class NewFunction:
    name: str
    description: str = ""
    lang: str = "py"
    type: str = "code"
    tags: tuple[str, ...] = ()
    source: str | None = None
    url: str = ""  # an HTTP function's (lang "http"), its shape already checked


@dataclass(frozen=True)
class FunctionPatch:
    """What PATCH /v1/function/{id} changes: the fields given (None: left as it is)."""

    name: str | None = None
    description: str | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FunctionDetail:
    """A function as its own view shows it: with its tags and its task counters."""

    function: FunctionRecord
    tags: dict[str, TagRecord]
    metrics: dict[str, int]


@dataclass(frozen=True)
class FunctionPage:
    functions: list[FunctionRecord]
    cursor: str | None
    tags: dict[str, TagRecord]  # the owner's tags by id, for the views (empty if none needed)


class FunctionService:
    def __init__(self, store: FunctionStore, builds: BuildService, *,
                 tags: TagService | None = None, memberships: TagMemberships | None = None,
                 metrics: FunctionMetrics | None = None, holds: HoldService | None = None,
                 settings: Settings | None = None):
        self.store = store
        self.builds = builds
        self.tags = tags or TagService.from_env()
        self.memberships = memberships or TagMemberships(wiring.table())
        self.metrics = metrics or wiring.function_metrics()
        # Releases the tasks that waited for a paused function, on resume and on delete.
        self.holds = holds or HoldService.from_env()
        self.settings = settings or get_settings()

    @classmethod
    def from_env(cls) -> FunctionService:
        return cls(wiring.functions(), BuildService.from_env())

    def create(self, caller: Caller, new: NewFunction) -> FunctionRecord:
        """A new function; with `source`, its first build runs at once. Its tags must be the
        caller's; their memberships are written before the function (stores.tags)."""
        tags, _ = self.tags.check(caller, new.tags)
        record = FunctionRecord(
            id=ids.new_id(),
            owner=caller.user,
            name=new.name,
            description=new.description,
            lang=new.lang,
            type=new.type,
            tags=list(tags),
            created_at=now_ns(),
            url=new.url,
        )
        self.memberships.put(record.id, record.owner, record.created_at, tags, 0)
        self.store.put_new(record)
        wiring.owner_metrics().register(record.id, record.owner)
        if new.source is not None:
            build = self.builds.create_from_source(caller, record, new.source)
            record = record.model_copy(update={"build_id": build.id, "code_key": build.code_key,
                                               "lambda_version": build.lambda_version})
        return record

    def get(self, caller: Caller, function_id: str) -> FunctionRecord:
        """The caller's function; anyone else's is NotFound, like an unknown id."""
        return owned(self.store.get, function_id, caller, "function")

    def list(
        self, caller: Caller, *, limit: int, cursor: str | None
    ) -> tuple[list[FunctionRecord], str | None]:
        return self.store.list_by_owner(caller.user, limit=limit, cursor=cursor)

    def delete(self, caller: Caller, function_id: str) -> None:
        """Its tasks and results stay; its tag memberships, counters and own Lambda
        (isolation "lambda") go with it, and the tasks that waited for its resume are sent
        on (no task waits for a function that is gone)."""
        if not ids.is_id(function_id) or not self.store.delete(function_id, caller.user):
            raise NotFound("function not found")
        # The held tasks first: what is left of the rest is garbage no view shows.
        released = self.holds.release_function(function_id)
        if released:
            logger.info("function %s deleted: %d held tasks released", function_id, released)
        self.memberships.remove_all(function_id)
        self.metrics.delete(function_id)
        self._remove_schedules(function_id)
        lambdas = self.builds.lambdas
        if lambdas is not None:
            try:
                lambdas.delete(function_id)
            except (ClientError, BotoCoreError):  # the stack's clean-up removes it at the end
                logger.exception("function %s deleted, its Lambda not", function_id)

    @staticmethod
    def _remove_schedules(function_id: str) -> None:
        """Its schedules go with it: Scheduler would otherwise fire them for nothing, for
        ever. (Its endpoints and triggers stay inert: they answer 404 and fire nothing.)"""
        from taskfn.services.schedules import ScheduleService  # only deletes need it

        try:
            ScheduleService.from_env().remove_of_function(function_id)
        except (ClientError, BotoCoreError):
            logger.exception("function %s deleted, its schedules not all", function_id)

    @contextmanager
    def owner_first(self, caller: Caller, function_id: str) -> Iterator[None]:
        """Around parsing and changing a function: a request refused as bad (400, 413) is
        a 404 when the function is not the caller's, whatever the request said, so that
        another owner's id is 404 on every route. The read happens on refusals only."""
        try:
            yield
        except (InvalidRequest, PayloadTooLarge):
            self.get(caller, function_id)
            raise

    def detail(self, caller: Caller, function_id: str) -> FunctionDetail:
        """The caller's function with its tags (those that still exist) and counters."""
        function = self.get(caller, function_id)
        tags = self.tags.known(caller.user) if function.tags else {}
        return FunctionDetail(function, tags, self.metrics.read(function.id, now_ns()))

    def page(self, caller: Caller, *, limit: int, cursor: str | None,
             tag: str | None = None) -> FunctionPage:
        """One page of the caller's functions, newest first; with `tag`, of those that carry
        it, through its memberships (one Query of them, then the page's functions by key),
        never by reading the others. A tag not the caller's is a 404."""
        if tag is None:
            functions, next_cursor = self.store.list_by_owner(caller.user, limit=limit,
                                                              cursor=cursor)
            tagged = any(function.tags for function in functions)
            return FunctionPage(functions, next_cursor,
                                self.tags.known(caller.user) if tagged else {})
        known = self.tags.known(caller.user) if ids.is_id(tag) else {}
        if tag not in known:
            raise NotFound("tag not found")
        function_ids, next_cursor = self.memberships.functions_page(tag, limit=limit,
                                                                    cursor=cursor)
        found = self.store.get_many(function_ids) if function_ids else []
        # A membership left by a race or a crash (stores.tags) is skipped, not shown.
        functions = [f for f in found if f.owner == caller.user and tag in f.tags]
        return FunctionPage(functions, next_cursor, known)

    def update(self, caller: Caller, function_id: str, patch: FunctionPatch) -> None:
        """Name, description and tags: one conditional write of the function. A change of
        tags reads the function first (the version of its tags, stores.tags), writes the new
        memberships, the function if its tags are still of that version, and then removes
        the memberships of tags it no longer has."""
        changes = {key: value for key, value in (("name", patch.name),
                                                 ("description", patch.description))
                   if value is not None}
        if not changes and patch.tags is None:
            raise InvalidRequest("nothing to change", "give name, description or tag")
        if not ids.is_id(function_id):
            raise NotFound("function not found")
        if patch.tags is None:
            ok, _ = self.store.update(function_id, caller.user, changes)
            if not ok:
                raise NotFound("function not found")
            return
        tags, _ = self.tags.check(caller, patch.tags)
        for _ in range(ATTEMPTS):
            found = self.store.get_versioned(function_id)
            if found is None or found[0].owner != caller.user:
                raise NotFound("function not found")
            function, version = found
            self.memberships.put(function.id, function.owner, function.created_at, tags,
                                 version + 1)
            ok, item = self.store.update(function_id, caller.user,
                                         {**changes, "tags": list(tags)}, tags_version=version)
            if ok:
                self.memberships.remove_others(function_id, tags, version + 1)
                return
            if item is None:  # deleted meanwhile: what was just written is its last trace
                self.memberships.remove_all(function_id)
                raise NotFound("function not found")
        raise Conflict("the function changed concurrently; try again")

    def toggle_pause(self, caller: Caller, function_id: str) -> bool:
        """Pause a running function or resume a paused one (one conditional write); a resume
        sends on the tasks that waited for it (services.holds). Whether it is paused now."""
        function = self.get(caller, function_id)
        for _ in range(ATTEMPTS):
            ok, item = self.store.set_paused(function_id, caller.user, not function.paused)
            if ok:
                break
            if item is None or item.get("owner") != caller.user:
                raise NotFound("function not found")
            function = FunctionRecord.model_validate(item)  # flipped meanwhile: flip that
        else:
            raise Conflict("the function changed concurrently; try again")
        paused = not function.paused
        if not paused:
            released = self.holds.release_function(function_id)
            logger.info("function %s resumed: %d held tasks released", function_id, released)
        return paused

    def set_capabilities(self, caller: Caller, function_id: str,
                         changes: dict[str, object]) -> Capabilities:
        """Set the capabilities given; the others keep their values. Tasks created from now
        on run with them; under isolation "lambda" the function's own Lambda gets the new
        memory and timeout at once."""
        if not changes:
            raise InvalidRequest("nothing to change",
                                 "give timeout, cpuCount, memSize, networkLatency or privileged")
        if changes.get("privileged") is True and not self.settings.allow_privileged:
            raise InvalidRequest(PRIVILEGED_REFUSED, "set ALLOW_PRIVILEGED to allow it")
        function = self.get(caller, function_id)
        capabilities = Capabilities.model_validate({**function.capabilities.model_dump(),
                                                    **changes})
        ok, item = self.store.update(function_id, caller.user,
                                     {"capabilities": capabilities.model_dump()})
        if not ok or item is None:
            raise NotFound("function not found")
        function = FunctionRecord.model_validate(item)
        lambdas = self.builds.lambdas
        if lambdas is not None and function.lambda_version:
            try:
                lambdas.configure(function)
            except (ClientError, BotoCoreError) as error:  # kept; the next build applies it
                logger.exception("function %s: its Lambda not configured", function_id)
                raise TaskfnError("capabilities saved, but the function's Lambda could not "
                                  "be configured; send them again") from error
        return function.capabilities
