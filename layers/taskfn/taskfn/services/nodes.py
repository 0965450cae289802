"""Nodes (reference/greencloud.md, Nodes): registered machines that run Cell API tasks, each
with a cell token bound to it.

Registering a node issues its cell token (shown once): the token acts only as that node's
cell (its cell id is the hash), and only on the tasks the node may run: a user's node its
owner's tasks, an admin's node (shared) any owner's; a privileged task only on a node that
offers privileged. A disabled node's token is refused on every cell route, so it gets no
work, and convergence fails what still runs on it. A node is available while it heartbeats
within the cell timeout and is not disabled; busy while it says it runs a task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from taskfn import ids, wiring
from taskfn.errors import Conflict, Forbidden, InvalidRequest, NotFound
from taskfn.lifecycle import SECOND_NS
from taskfn.models import BUILT_IN_CELL_PREFIX, Caller, NodeRecord, Scope, now_ns
from taskfn.services.ownership import owned
from taskfn.services.tokens import IssuedToken, TokenService
from taskfn.settings import Settings, get_settings
from taskfn.stores.nodes import NodeStore

HASH_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
RESERVED_HASHES = frozenset({"list"})  # GET /v1/node/list is a route of its own
DESCRIPTION_MAX = 1024
RUNNING_MAX = 10_000


@dataclass(frozen=True)
class NodeRights:
    """What a cell may act on: `owner`'s tasks only (None: any owner's), privileged ones only
    if `privileged`. Admins (and the platform's own executor) have no limit."""

    owner: str | None = None
    privileged: bool = True

    @property
    def unprivileged(self) -> bool:
        return not self.privileged


UNLIMITED = NodeRights()


def check_hash(hash_: str) -> str:
    if (not HASH_PATTERN.match(hash_) or hash_ in RESERVED_HASHES
            or hash_.startswith(BUILT_IN_CELL_PREFIX)):
        raise InvalidRequest(
            "invalid node hash",
            "1-128 characters: letters, digits, '_', '.', ':', '-'; not 'list', not starting"
            f" with '{BUILT_IN_CELL_PREFIX}' (the built-in executor's cells)")
    return hash_


def available(node: NodeRecord, now: int, settings: Settings) -> bool:
    """Heartbeating within the cell timeout, and not disabled."""
    fresh = now - node.heartbeat_at <= settings.cell_timeout_s * SECOND_NS
    return not node.disabled and node.heartbeat_at > 0 and fresh


class NodeService:
    def __init__(self, store: NodeStore, tokens: TokenService, settings: Settings):
        self.store = store
        self.tokens = tokens
        self.settings = settings

    @classmethod
    def from_env(cls) -> NodeService:
        return cls(wiring.nodes(), TokenService.from_env(), get_settings())

    def register(self, caller: Caller, hash_: str, body: dict[str, Any]
                 ) -> tuple[NodeRecord, IssuedToken]:
        """A new node and its cell token. An admin's node is shared (runs every owner's
        tasks); a user's runs only theirs. The hash is unique across owners: 409 if taken."""
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
            raise InvalidRequest("invalid description", f"a string of at most {DESCRIPTION_MAX}"
                                 " characters")
        privileged = body.get("privileged", False)
        if not isinstance(privileged, bool):
            raise InvalidRequest("invalid privileged", "true or false: whether the node runs"
                                 " tasks of privileged functions")
        node = NodeRecord(hash=check_hash(hash_), owner=caller.user, description=description,
                          shared=caller.scope is Scope.ADMIN, privileged=privileged,
                          token_id=ids.new_id(), created_at=now_ns())
        if not self.store.put_new(node):
            raise Conflict("node already registered", "a node's hash is unique; choose another")
        issued = self.tokens.create(caller.user, Scope.CELL, node=node.hash, shared=node.shared,
                                    token_id=node.token_id)
        return node, issued

    def list(self, caller: Caller) -> list[NodeRecord]:
        return self.store.list(caller.user)

    def get(self, caller: Caller, hash_: str) -> NodeRecord:
        return owned(lambda key: self.store.get(key, consistent=True), hash_, caller, "node",
                     valid=lambda key: bool(HASH_PATTERN.match(key)))

    def set_disabled(self, caller: Caller, hash_: str, disabled: bool) -> NodeRecord:
        """DELETE disables (no more work; what runs there is failed by convergence); PATCH
        restores. The node and its token stay."""
        self.get(caller, hash_)
        if not self.store.set_disabled(hash_, caller.user, disabled, now_ns()):
            raise NotFound("node not found")
        return self.get(caller, hash_)

    def heartbeat(self, caller: Caller, hash_: str, running: Any) -> None:
        """The node's cell says it is up and runs `running` tasks."""
        if caller.scope is not Scope.CELL or caller.node != hash_:
            raise Forbidden("only the node's own cell token heartbeats it")
        if isinstance(running, bool) or not isinstance(running, int) or not (
                0 <= running <= RUNNING_MAX):
            raise InvalidRequest("invalid running", f"an integer from 0 to {RUNNING_MAX}: how"
                                 " many tasks the node runs now")
        if not self.store.heartbeat(hash_, now_ns(), running):
            raise Forbidden(f"node {hash_} is disabled", "restore it: PATCH /v1/node/{hash}")

    # --- what a cell may do ----------------------------------------------------------

    def rights(self, caller: Caller, cell_id: str) -> NodeRights:
        """The rights of `caller` acting as cell `cell_id`: a cell token only as its own
        node, and only while that node is not disabled (one GetItem)."""
        if caller.scope is Scope.ADMIN:
            return UNLIMITED
        if caller.scope is not Scope.CELL or not caller.node:
            raise Forbidden("only a node's cell token acts as a cell")
        if cell_id != caller.node:
            raise Forbidden(f"this cell token is node {caller.node}'s: it acts only as cell"
                            f" {caller.node}")
        node = self.store.get(caller.node, consistent=True)
        if node is None or node.disabled:
            raise Forbidden(f"node {caller.node} is disabled",
                            "its owner restores it: PATCH /v1/node/{hash}")
        return NodeRights(owner=None if caller.shared else caller.user,
                          privileged=node.privileged)
