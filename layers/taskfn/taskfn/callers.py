"""Who is calling: the authorizer's answer as every route reads it.

Pure data with no pydantic, apart from taskfn.models (which re-exports both), so that a handler
knows its caller without importing the records' validation at its cold start."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    USER = "user"
    CELL = "cell"
    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the authorizer established it."""

    user: str
    scope: Scope
    token_id: str = ""
    # A cell token's node (its cell id) and whether an admin registered it (a shared node
    # runs every owner's tasks; a user's node only its owner's). Empty for other tokens.
    node: str = ""
    shared: bool = False
