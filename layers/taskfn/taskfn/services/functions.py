"""Functions: register, read, list, delete. Code arrives through builds."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import ids, wiring
from taskfn.errors import NotFound
from taskfn.models import Caller, FunctionRecord, now_ns
from taskfn.services.builds import BuildService
from taskfn.services.ownership import owned
from taskfn.stores.records import FunctionStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewFunction:
    name: str
    description: str = ""
    lang: str = "py"
    type: str = "code"
    tags: tuple[str, ...] = ()
    source: str | None = None


class FunctionService:
    def __init__(self, store: FunctionStore, builds: BuildService):
        self.store = store
        self.builds = builds

    @classmethod
    def from_env(cls) -> FunctionService:
        return cls(wiring.functions(), BuildService.from_env())

    def create(self, caller: Caller, new: NewFunction) -> FunctionRecord:
        """A new function; with `source`, its first build runs at once."""
        record = FunctionRecord(
            id=ids.new_id(),
            owner=caller.user,
            name=new.name,
            description=new.description,
            lang=new.lang,
            type=new.type,
            tags=list(new.tags),
            created_at=now_ns(),
        )
        self.store.put_new(record)
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
        """Its tasks and results stay; its own Lambda (isolation "lambda") goes with it."""
        if not ids.is_id(function_id) or not self.store.delete(function_id, caller.user):
            raise NotFound("function not found")
        lambdas = self.builds.lambdas
        if lambdas is not None:
            try:
                lambdas.delete(function_id)
            except (ClientError, BotoCoreError):  # the stack's clean-up removes it at the end
                logger.exception("function %s deleted, its Lambda not", function_id)
