"""API tokens: random, shown once, stored only as a hash, scoped user|cell|admin."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from taskfn import ids, wiring
from taskfn.errors import InvalidRequest
from taskfn.models import Caller, Scope, TokenRecord, now_ns
from taskfn.stores.records import TokenStore

USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "tfn_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_header(value: str | None) -> str | None:
    """`Authorization: <token>` or `Authorization: Bearer <token>`."""
    if not value:
        return None
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    user: str
    scope: Scope


class TokenService:
    def __init__(self, store: TokenStore):
        self.store = store

    @classmethod
    def from_env(cls) -> TokenService:
        return cls(wiring.tokens())

    def create(self, user: str, scope: Scope | str, token: str | None = None) -> IssuedToken:
        """A new token; `token` lets an operator choose the secret (the local admin token)."""
        if not isinstance(user, str) or not USER_PATTERN.match(user):
            raise InvalidRequest(
                "invalid user", "1-64 characters: letters, digits, '_', '.', '@', '-'"
            )
        try:
            scope = Scope(scope)
        except (ValueError, TypeError) as error:
            raise InvalidRequest("invalid scope", "one of user, cell, admin") from error
        secret = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
        if len(secret) < 16:
            raise InvalidRequest("token too short", "at least 16 characters")
        record = TokenRecord(id=ids.new_id(), user=user, scope=scope, created_at=now_ns())
        if not self.store.put(hash_token(secret), record) and token is None:
            raise RuntimeError("token collision")  # 256 random bits: does not happen
        return IssuedToken(record.id, secret, user, scope)

    def authenticate(self, header_value: str | None) -> Caller | None:
        """The caller a token belongs to, or None. One read, by hash."""
        secret = token_from_header(header_value)
        if secret is None or len(secret) > 512:
            return None
        record = self.store.get(hash_token(secret))
        if record is None:
            return None
        return Caller(user=record.user, scope=record.scope, token_id=record.id)
