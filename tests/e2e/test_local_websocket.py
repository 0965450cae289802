"""The local WebSocket server, in process: a request that is no WebSocket handshake is
refused before $connect, so it leaves nothing behind (each test the attack, failing when it
works)."""

from __future__ import annotations

import socket as sockets
import uuid
from collections.abc import Iterator

import pytest

from taskfn.local.stack import LocalStack

from .conftest import Client, in_process_stack
from .test_fastlane_live_logs import Fastlane

pytestmark = pytest.mark.e2e
ADMIN = "tfn_local-ws-admin-token-0123456789"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    with in_process_stack(ADMIN, "localws", {}) as stack:
        yield stack


def test_a_request_that_is_no_handshake_is_refused_before_connect_and_leaves_nothing(local):
    answer = Client(local.url, ADMIN).request("POST", "/v1/tokens",
                                              {"user": "mallory-ws", "scope": "user"})
    mallory = Fastlane(Client(local.url), answer.json()["token"])
    api = local.websocket
    before = len(api._pending)
    for _ in range(20):
        with sockets.create_connection(("127.0.0.1", api.port), timeout=30) as raw:
            # No Sec-WebSocket-Key: not a handshake websockets accepts.
            raw.sendall((f"GET /tasks/ws-probe/jobs/{uuid.uuid4()}/ws HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{api.port}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         f"Authorization: {mallory.auth['Authorization']}\r\n\r\n").encode())
            status = raw.recv(4096).split(b"\r\n", 1)[0]
            assert status.startswith(b"HTTP/1.1 400"), status
    assert len(api._pending) - before == 0, f"{len(api._pending) - before} ServerConnections kept"
