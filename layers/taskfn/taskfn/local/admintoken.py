"""The local stack's admin token, kept with the data so that it stays the same across
restarts (user tokens survive anyway: their hashes are in the kept table).

With a data directory there is one admin token per directory, kept in `admin-token` (0600):
- none given and none kept: a new one is made, kept and shown;
- none given: the kept one is used (and issued again, should the snapshot predate it);
- one given (TASKFN_ADMIN_TOKEN): it is the directory's admin token from now on; it is kept,
  and the one kept before it is revoked, so a forgotten secret does not stay valid.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import boto3

from taskfn.local import datadir, persistence

FILE = "admin-token"


@dataclass(frozen=True)
class AdminToken:
    token: str
    generated: bool  # made now: to be shown once
    kept: Path | None  # where it is kept (with a data directory)


def issue_admin_token(given: str | None, data_dir: Path | None, table: str) -> AdminToken:
    """Issue the admin token (idempotent for a token already issued); see the module."""
    from taskfn.services.tokens import TOKEN_PREFIX, TokenService, hash_token

    kept_path = data_dir / FILE if data_dir is not None else None
    kept = datadir.read_private(kept_path) if kept_path is not None else None
    token = given or kept
    generated = token is None
    if token is None:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    TokenService.from_env().create(user="admin", scope="admin", token=token)
    if kept_path is not None and token != kept:
        persistence.write_private(kept_path, (token + "\n").encode())
    if kept is not None and kept != token:
        boto3.client("dynamodb").delete_item(
            TableName=table, Key={"PK": {"S": f"TOKEN#{hash_token(kept)}"}, "SK": {"S": "TOKEN"}})
    return AdminToken(token, generated, kept_path)
