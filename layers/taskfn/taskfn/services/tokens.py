"""API tokens: random, shown once, stored only as a hash, scoped user|cell|admin."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from taskfn import ids, wiring
from taskfn.errors import InvalidRequest
from taskfn.models import Caller, Scope, TokenRecord, now_ns
from taskfn.stores.records import TokenStore

# The authorizer runs for every request (no identity source, so no API Gateway cache): it
# keeps what it learnt of a token for as long as API Gateway's cache did, in a bounded map.
AUTH_CACHE_S = 60.0
AUTH_CACHE_MAX = 10_000
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "tfn_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_header(value: str | None) -> str | None:
    """`Authorization: <token>`, `Bearer <token>`, or HTTP Basic with the token as the
    password and any user name (fastlane's clients authenticate so)."""
    if not value:
        return None
    value = value.strip()
    if value.lower() in ("bearer", "basic"):  # a scheme without its credentials
        return None
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    elif value[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(value[6:].strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        _, colon, value = decoded.partition(":")
        if not colon:
            return None
    return value or None


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    user: str
    scope: Scope


class TokenService:
    def __init__(self, store: TokenStore, *, cache_s: float = AUTH_CACHE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.cache_s = cache_s
        self.clock = clock
        self._known: dict[str, tuple[float, Caller | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> TokenService:
        return cls(wiring.tokens())

    def create(self, user: str, scope: Scope | str, token: str | None = None, *,
               node: str = "", shared: bool = False, token_id: str = "") -> IssuedToken:
        """A new token; `token` lets an operator choose the secret (the local admin token).
        A cell token is issued only with its node (services/nodes.py), bound to it."""
        if not isinstance(user, str) or not USER_PATTERN.match(user):
            raise InvalidRequest(
                "invalid user", "1-64 characters: letters, digits, '_', '.', '@', '-'"
            )
        try:
            scope = Scope(scope)
        except (ValueError, TypeError) as error:
            raise InvalidRequest("invalid scope", "one of user, cell, admin") from error
        if (scope is Scope.CELL) != bool(node):
            raise InvalidRequest("a cell token comes with its node",
                                 "register the node: POST /v1/node/{hash} answers its token")
        secret = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        if len(secret) < 16:
            raise InvalidRequest("token too short", "at least 16 characters")
        record = TokenRecord(id=token_id or ids.new_id(), user=user, scope=scope,
                             created_at=now_ns(), node=node, shared=shared)
        if not self.store.put(hash_token(secret), record) and token is None:
            raise RuntimeError("token collision")  # 256 random bits: does not happen
        return IssuedToken(record.id, secret, user, scope)

    def authenticate(self, header_value: str | None) -> Caller | None:
        """The caller a token belongs to, or None. One read, by hash."""
        secret = token_from_header(header_value)
        if secret is None or len(secret) > 512:
            return None
        digest = hash_token(secret)
        now = self.clock()
        with self._lock:
            known = self._known.get(digest)
        if known is not None and known[0] > now:
            return known[1]
        record = self.store.get(digest)
        caller = None if record is None else Caller(
            user=record.user, scope=record.scope, token_id=record.id, node=record.node,
            shared=record.shared)
        with self._lock:
            if len(self._known) >= AUTH_CACHE_MAX:
                self._known.clear()
            self._known[digest] = (now + self.cache_s, caller)
        return caller
