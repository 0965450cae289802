"""AWS clients, one per service per process, built once and shared by threads.

One boto3 session serves every client, so the second client reuses the first one's loaded
endpoint and retry data; clients are built on first use, so a handler's init pays only for the
services it touches. Endpoints come from the standard environment (AWS_ENDPOINT_URL locally),
never from code.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=20,
    tcp_keepalive=True,
)
# Invoking a function's Lambda waits for the whole task (its timeout is at most 130 s); a retry
# after an answer was lost would run the task again, so only throttling is worth one.
_SERVICE_CONFIGS = {
    "lambda": Config(retries={"mode": "standard", "total_max_attempts": 2},
                     connect_timeout=3, read_timeout=300, tcp_keepalive=True),
    # SigV4 for presigned URLs too (boto3 presigns S3 with SigV2 otherwise).
    "s3": _CONFIG.merge(Config(signature_version="s3v4")),
}
_clients: dict[str, Any] = {}
_session: list[boto3.session.Session] = []
_credentials: list[Credentials] = []  # given by the host process; none: the standard chain
_lock = threading.Lock()


def client(service: str) -> Any:
    """The process's client for `service` (boto3 clients are thread-safe once built)."""
    found = _clients.get(service)
    if found is None:
        with _lock:  # sessions are not thread-safe while they build clients
            found = _clients.get(service)
            if found is None:
                if not _session:
                    _session.append(_new_session())
                config = _SERVICE_CONFIGS.get(service, _CONFIG)
                found = _clients[service] = _session[0].client(service, config=config)
    return found


def client_at(service: str, endpoint_url: str) -> Any:
    """The process's client for `service` at an endpoint only known at run time (API
    Gateway's @connections API is at the WebSocket API's own URL)."""
    key = f"{service}@{endpoint_url}"
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                if not _session:
                    _session.append(_new_session())
                found = _clients[key] = _session[0].client(
                    service, endpoint_url=endpoint_url or None, config=_CONFIG)
    return found


def _new_session() -> boto3.session.Session:
    if not _credentials:
        return boto3.session.Session()
    core = botocore.session.get_session()
    core.register_component("credential_provider", CredentialResolver([_Given(_credentials[0])]))
    return boto3.session.Session(botocore_session=core)


class _Given(CredentialProvider):
    METHOD = "taskfn-given"

    def __init__(self, credentials: Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def use_credentials(credentials: Credentials | None) -> None:
    """Sign every client's requests with these credentials (None: the standard chain again).

    For a host that runs several functions in one process: the local stack gives each function
    the credentials of its own role. In Lambda each function has a process and an environment
    of its own, so nothing calls this there."""
    with _lock:
        _credentials.clear()
        if credentials is not None:
            _credentials.append(credentials)
        _clients.clear()
        _session.clear()


class LazyClient:
    """Stands in for a client until first used, so building a store costs nothing."""

    def __init__(self, service: str):
        self.service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self.service), name)


def reset_clients() -> None:
    """Forget built clients and the session (tests that change endpoints)."""
    with _lock:
        _clients.clear()
        _session.clear()
