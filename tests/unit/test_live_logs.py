"""The live logs' pure parts: where an execution stands for its followers and what a new
follower gets at once, message splitting, the stream page's escaping and CSP, and the local
WebSocket API's reading of the template and its SigV4 check of the pump's calls."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from taskfn.adapters import fastlane_stream
from taskfn.lifecycle import State
from taskfn.local.identities import Identities
from taskfn.local.template import load_template
from taskfn.local.websocket import LocalWebSocketApi, managing_functions, websocket_routes
from taskfn.models import TaskRecord
from taskfn.services.livelogs import (
    DONE,
    NOT_FOUND,
    RETRY,
    Close,
    first_close,
    pack,
    phase_of,
    record_text,
    split_text,
)

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
E1, E2 = "019acd5e-6b40-7a31-8c2e-5f6a7b8c9d0e", "019acd5e-6b40-7a31-8c2e-5f6a7b8c9d0f"


def task(state: State, *, execution: str = E1, container_status: str = "") -> TaskRecord:
    return TaskRecord(task_guid=E1, owner="alice", lang="container", created_at=1,
                      updated_at=1, state=state, execution_id=execution,
                      container_status=container_status)


@pytest.mark.parametrize(("record", "phase", "close"), [
    (task(State.PENDING), "pending", Close(NOT_FOUND, RETRY)),
    (task(State.RUNNING), "pulling", Close(NOT_FOUND, RETRY)),
    (task(State.RUNNING, container_status="PROVISIONING"), "pulling", Close(NOT_FOUND, RETRY)),
    (task(State.RUNNING, container_status="RUNNING"), "running", None),
    (task(State.COMPLETED, container_status="STOPPED"), "finished", None),
    # The task retried: the execution followed is an earlier attempt, finished.
    (task(State.PENDING, execution=E2), "finished", None),
    (task(State.RUNNING, execution=E2, container_status="RUNNING"), "finished", None),
    (None, "finished", None),  # gone with its retention
])
def test_where_an_execution_stands_and_what_a_new_follower_gets(record, phase, close):
    assert phase_of(record, E1) == phase
    assert first_close(phase) == close


def test_the_reasons_are_fastlane_s():
    assert (DONE, RETRY, NOT_FOUND) == ("wsdone", "wsretry", 1010)


def test_messages_are_cut_between_characters_within_the_limit():
    text = "a" * 5 + "é" * 4 + "€" * 3  # 1-, 2- and 3-byte characters
    pieces = split_text(text, limit=4)
    assert "".join(pieces) == text
    assert all(len(piece.encode()) <= 4 for piece in pieces)
    assert split_text("") == []
    assert pack(["ab", "cd", "efg", "h", "ij"], limit=4) == ["abcd", "efgh", "ij"]
    assert pack(["toolongtext", "x"], limit=4) == ["toolongtext", "x"]


def test_a_log_event_s_text_is_its_record_s_or_the_plain_line():
    assert record_text(json.dumps({"source": "stderr", "log": "a\nb"})) == "a\nb"
    assert record_text("plain line") == "plain line"
    assert record_text('{"no": "log"}') == '{"no": "log"}'
    assert record_text("[1, 2]") == "[1, 2]"


def test_the_page_escapes_what_it_shows_and_its_json():
    body = fastlane_stream.page(task_id="<img src=x>", job_id="j", execution_id="",
                                url="wss://h/live?task=%3C&ticket=t", nonce="N",
                                ticket_seconds=600)
    assert "<img" not in body and "&lt;img src=x&gt;" in body
    config = re.search(r'id="config">(.*?)</script>', body, re.S).group(1)
    assert "<" not in config and json.loads(config)["taskId"] == "<img src=x>"
    assert '<script nonce="N">' in body
    assert "createTextNode" in body and "innerHTML" not in body


def test_the_csp_names_the_socket_s_origin_only():
    policy = fastlane_stream.content_security_policy("wss://abc.example/live", "N")
    assert "connect-src wss://abc.example;" in policy
    assert policy.startswith("default-src 'none'") and "script-src 'nonce-N'" in policy
    assert "connect-src ws://127.0.0.1:3001;" in fastlane_stream.content_security_policy(
        "ws://127.0.0.1:3001/live", "N")


def test_socket_urls_are_the_query_form():
    assert fastlane_stream.socket_url("wss://h/live", "a b", "j", "e", "t") == \
        "wss://h/live?task=a+b&job=j&execution=e&ticket=t"
    assert fastlane_stream.socket_url("wss://h/live", "t", "j") == "wss://h/live?task=t&job=j"


def test_the_local_api_routes_as_the_template_says_and_only_the_pump_manages():
    assert websocket_routes(TEMPLATE) == {"$connect": "WsConnectFunction",
                                          "$disconnect": "WsDisconnectFunction",
                                          "$default": "WsDefaultFunction"}
    assert managing_functions(TEMPLATE) == {"LogPumpFunction"}


def _signed(credentials: ReadOnlyCredentials, body: bytes, *, region: str = "us-east-1",
            url: str = "http://127.0.0.1:9/live/@connections/abc%3D") -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials(*credentials), "execute-api", region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()} | {
        "host": "127.0.0.1:9"}


def test_management_calls_must_be_signed_by_a_role_that_may_manage_connections():
    pump = ReadOnlyCredentials("AKIAPUMP", "pump-secret", "pump-token")
    other = ReadOnlyCredentials("AKIAOTHER", "other-secret", "other-token")
    identities = Identities(ReadOnlyCredentials("AKIAADMIN", "admin-secret", None),
                            {"LogPumpFunction": pump, "WsConnectFunction": other})
    api = LocalWebSocketApi(TEMPLATE, invoker=None, identities=identities, port=0)
    try:
        path = "/live/@connections/abc%3D"
        headers = _signed(pump, b"hello")
        assert api.signer("POST", path, headers, b"hello") == "LogPumpFunction"
        assert api.signer("POST", path, headers, b"tampered") is None
        assert api.signer("DELETE", path, headers, b"hello") is None
        assert api.signer("POST", path, _signed(other, b"hello"), b"hello") is None
        forged = _signed(ReadOnlyCredentials("AKIAPUMP", "guessed", "pump-token"), b"hello")
        assert api.signer("POST", path, forged, b"hello") is None
        assert api.signer("POST", path, {"host": "127.0.0.1:9"}, b"hello") is None
        stale = dict(headers, **{"x-amz-date": time.strftime(
            "%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 3600))})
        assert api.signer("POST", path, stale, b"hello") is None
    finally:
        api._management.server_close()
