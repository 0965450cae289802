"""AWS clients, one per service per process, built at init and shared by threads.

Endpoints come from the standard environment (AWS_ENDPOINT_URL locally), never from code.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=20,
    tcp_keepalive=True,
)
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """The process's client for `service` (boto3 clients are thread-safe once built)."""
    found = _clients.get(service)
    if found is None:
        with _lock:
            found = _clients.get(service)
            if found is None:
                found = _clients[service] = boto3.session.Session().client(
                    service, config=_CONFIG
                )
    return found


def reset_clients() -> None:
    """Forget built clients (tests that change endpoints)."""
    with _lock:
        _clients.clear()
