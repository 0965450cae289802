"""Completion callbacks against moto: queued from the table's stream (through the enqueue
mapping's filter) after every completing write, whoever made it, delivered by
CallbackDelivery (statuses, retries, SSRF guard, a real 127.0.0.1 server), and convergence
steps 4-6. Clocks and the HTTP poster are injected: nothing waits on a real timeout but the
POST's own deadline, against a server that trickles its answer."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from taskfn import aws, lifecycle, wiring
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.services.callbacks import CallbackDelivery, RefusedURL, check_url, queue_callbacks
from taskfn.services.cells import CellService
from taskfn.services.converger import SECOND_NS, Converger, step_for
from taskfn.settings import get_settings
from taskfn.stores.queue import decode
from tests.integration.helpers import StreamReader, open_keys

S = SECOND_NS
T0 = now_ns()
URL = "http://callbacks.example.com/done"


def put(guid: str, *, url: str = URL, at: int = T0) -> None:
    task = TaskRecord(task_guid=guid, owner="alice", created_at=at, updated_at=at,
                      completion_callback_url=url, annotation="note")
    assert wiring.tasks().put_new(task)


def completed(guid: str, *, url: str = URL, at: int = T0) -> None:
    """A task with a callback (by default), Completed at `at`."""
    put(guid, url=url, at=at - 2 * S)
    wiring.tasks().apply(guid, lifecycle.start("cell-a", at - S))
    wiring.tasks().apply(guid, lifecycle.complete("cell-a", at, failed=False, result="42"))


@pytest.fixture(autouse=True)
def stream(request):
    """The table's stream as CallbackEnqueueFunction's mapping reads it (tests on moto)."""
    global _stream
    _stream = None
    if "backend" in request.fixturenames:
        request.getfixturevalue("backend")  # the table must exist first
        _stream = StreamReader()
    yield
    _stream = None


_stream: StreamReader | None = None


def callbacks_queued() -> list[str]:
    """What the stream queued since the last call (the enqueue function's path), drained
    from the callback queue."""
    assert _stream is not None
    queue_callbacks(_stream.records("CallbackEnqueueFunction"), wiring.callback_queue())
    found: list[str] = []
    while True:
        answer = aws.client("sqs").receive_message(
            QueueUrl=get_settings().callback_queue_url, MaxNumberOfMessages=10,
            WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return sorted(found)
        for message in messages:
            found.append(decode(message["Body"]))
            aws.client("sqs").delete_message(QueueUrl=get_settings().callback_queue_url,
                                              ReceiptHandle=message["ReceiptHandle"])


class Poster:
    """Answers in turn: an int is a status, an exception is raised (timeout, refused)."""

    def __init__(self, *answers: int | Exception):
        self.answers = list(answers)
        self.calls: list[tuple[str, dict, float]] = []
        self.addresses: list[str] = []

    def __call__(self, url: str, body: bytes, timeout: float, address: str) -> int:
        self.calls.append((url, json.loads(body), timeout))
        self.addresses.append(address)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def public(host: str) -> list[str]:
    return ["93.184.216.34"]


def delivery(post: Poster, *, allow_private: bool = False, resolver=public) -> CallbackDelivery:
    settings = get_settings().model_copy(update={"allow_private_callbacks": allow_private})
    return CallbackDelivery(wiring.tasks(), settings, post=post, resolver=resolver)


# --- queued after completion, kept on the open index -----------------------------------


def test_completing_a_task_with_a_callback_queues_it_and_keeps_it_indexed(backend):
    completed("cb")
    completed("plain", url="")
    assert callbacks_queued() == ["cb"]
    assert open_keys() == ["TASK#cb"]
    assert wiring.tasks().get("cb").state == "Completed"


def test_every_cell_route_that_completes_queues_the_callback(backend):
    cells = CellService.from_env()
    admin = Caller(user="admin", scope=Scope.ADMIN)
    for guid in ("cancelled", "failed", "done", "rejected"):
        put(guid)
    cells.cancel(admin, "cancelled")
    cells.fail("failed", "broke")
    assert cells.start("done", "cell-a")
    cells.complete("done", "cell-a", failed=False, failure_reason="", result="ok")
    for _ in range(get_settings().max_task_retries + 1):
        cells.reject("rejected", "no room")
    assert callbacks_queued() == ["cancelled", "done", "failed", "rejected"]
    assert {wiring.tasks().get(g).state for g in ("cancelled", "failed", "done", "rejected")} \
        == {"Completed"}


# --- delivery -------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "attempts", "outcome"), [
    ((200,), 1, "delivered"),
    ((500,), 1, "delivered"),
    ((404,), 1, "delivered"),
    ((503, 503, 200), 3, "delivered"),
    ((TimeoutError("slow"), 200), 2, "delivered"),
    ((ConnectionRefusedError("down"), 504, 204), 3, "delivered"),
    ((503, 503, 503), 3, "gave_up"),
    ((TimeoutError("slow"),) * 3, 3, "gave_up"),
])
def test_callback_statuses(backend, answers, attempts, outcome):
    completed("t")
    post = Poster(*answers)
    assert delivery(post).deliver("t") == outcome
    assert len(post.calls) == attempts
    task = wiring.tasks().get("t")
    if outcome == "delivered":
        assert task is None and open_keys() == []
    else:
        assert task.state == "Resolving" and open_keys() == ["TASK#t"]


def test_the_payload_is_bbs_callback_body(backend):
    completed("t")
    post = Poster(200)
    delivery(post).deliver("t")
    url, body, timeout = post.calls[0]
    assert (url, timeout) == (URL, get_settings().callback_timeout_s)
    assert body == {"task_guid": "t", "failed": False, "failure_reason": "", "result": "42",
                    "annotation": "note", "created_at": T0 - 2 * S}


def test_a_task_not_completed_any_more_drops_the_message(backend):
    put("pending")
    completed("resolving")
    wiring.tasks().apply("resolving", lifecycle.resolving(T0))
    completed("plain", url="")
    post = Poster()
    for guid in ("pending", "resolving", "plain", "missing"):
        assert delivery(post).deliver(guid) == "dropped"
    assert post.calls == []
    assert wiring.tasks().get("pending").state == "Pending"
    assert wiring.tasks().get("resolving").state == "Resolving"
    assert wiring.tasks().get("plain").state == "Completed"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1", "fe80::1", "0.0.0.0"])
def test_private_addresses_are_refused_unless_allowed(address):
    with pytest.raises(RefusedURL):
        check_url("http://h.example/x", allow_private=False, resolver=lambda host: [address])
    assert check_url("http://h.example/x", allow_private=True,
                     resolver=lambda host: [address]) == address


def test_every_attempt_connects_to_the_address_that_was_checked(backend):
    """DNS rebinding: the name is resolved once, checked, and that address is used; a
    resolver answering a private address the second time is never asked again."""
    completed("t")
    answers = [["93.184.216.34"], ["169.254.169.254"]]
    post = Poster(503, 200)
    outcome = delivery(post, resolver=lambda host: answers.pop(0)).deliver("t")
    assert outcome == "delivered"
    assert post.addresses == ["93.184.216.34", "93.184.216.34"]
    assert answers == [["169.254.169.254"]]


def test_only_http_urls_are_called():
    for url in ("file:///etc/passwd", "ftp://h.example/x", "http:///nohost"):
        with pytest.raises(RefusedURL):
            check_url(url, allow_private=True)


def test_a_refused_callback_is_never_posted_and_the_task_is_deleted(backend):
    completed("t", url="http://metadata.internal/latest")
    post = Poster()
    outcome = delivery(post, resolver=lambda host: ["169.254.169.254"]).deliver("t")
    assert (outcome, post.calls) == ("refused", [])
    assert wiring.tasks().get("t") is None


class _Recorder(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[dict] = []
    hosts: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        type(self).hosts.append((self.headers["Host"], self.path))
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).statuses.pop(0))
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_real_server_on_localhost_gets_the_callback_after_a_503(backend):
    _Recorder.statuses, _Recorder.bodies = [503, 200], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cb"
        completed("t", url=url)
        settings = get_settings().model_copy(update={"allow_private_callbacks": True})
        assert CallbackDelivery(wiring.tasks(), settings).deliver("t") == "delivered"
        refused = get_settings().model_copy(update={"allow_private_callbacks": False})
        completed("u", url=url)
        assert CallbackDelivery(wiring.tasks(), refused).deliver("u") == "refused"
    finally:
        server.shutdown()
        server.server_close()
    assert [body["task_guid"] for body in _Recorder.bodies] == ["t", "t"]
    assert wiring.tasks().get("t") is None


def test_the_post_goes_to_the_checked_address_with_the_url_s_host_name(backend):
    _Recorder.statuses, _Recorder.bodies, _Recorder.hosts = [200], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        # A name no DNS knows: only the pinned address can reach the server.
        completed("t", url=f"http://callbacks.invalid:{port}/cb?x=1")
        settings = get_settings().model_copy(update={"allow_private_callbacks": True})
        pinned = CallbackDelivery(wiring.tasks(), settings, resolver=lambda host: ["127.0.0.1"])
        assert pinned.deliver("t") == "delivered"
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.hosts == [(f"callbacks.invalid:{port}", "/cb?x=1")]


class _Trickler(BaseHTTPRequestHandler):
    """Reads the POST, then answers one byte every `pace` seconds: each byte comes well
    within a socket timeout, the whole answer long after the POST's deadline. Records how
    many bytes of the answer each connection got out before the client hung up."""

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    pace = 0.1
    sent: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        count = 0
        for byte in self.answer:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the client is gone
                break
            count += 1
            time.sleep(self.pace)
        type(self).sent.append(count)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def _self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` that signs itself, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class _JoiningServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for every connection's handler


def _serve(handler, scheme: str, tmp_path: Path, monkeypatch) -> ThreadingHTTPServer:
    """A server on 127.0.0.1; for https, with a certificate for callbacks.test that this
    test's TLS clients trust (SSL_CERT_FILE)."""
    server = _JoiningServer(("127.0.0.1", 0), handler)
    if scheme == "https":
        cert_file, key_file = _self_signed(tmp_path, "callbacks.test")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_trickles_its_answer_is_given_up_on_at_the_deadline(
        backend, tmp_path, monkeypatch, scheme):
    """The timeout is each POST's whole budget, not a limit on each read: a server sending a
    byte at a time cannot hold the callback until the Lambda times out."""
    _Trickler.sent = []
    server = _serve(_Trickler, scheme, tmp_path, monkeypatch)
    try:
        completed("t", url=f"{scheme}://callbacks.test:{server.server_address[1]}/cb")
        settings = get_settings().model_copy(update={"allow_private_callbacks": True,
                                                     "callback_timeout_s": 1})
        pinned = CallbackDelivery(wiring.tasks(), settings, resolver=lambda host: ["127.0.0.1"])
        assert pinned.deliver("t") == "gave_up"
    finally:
        _stop(server)
    assert wiring.tasks().get("t").state == "Resolving"
    assert len(_Trickler.sent) == 3  # every attempt timed out
    assert all(count < len(_Trickler.answer) for count in _Trickler.sent), _Trickler.sent


def test_an_https_callback_is_delivered_to_the_checked_address(backend, tmp_path, monkeypatch):
    _Recorder.statuses, _Recorder.bodies, _Recorder.hosts = [200], [], []
    server = _serve(_Recorder, "https", tmp_path, monkeypatch)
    try:
        port = server.server_address[1]
        completed("t", url=f"https://callbacks.test:{port}/cb")
        settings = get_settings().model_copy(update={"allow_private_callbacks": True})
        pinned = CallbackDelivery(wiring.tasks(), settings, resolver=lambda host: ["127.0.0.1"])
        assert pinned.deliver("t") == "delivered"
    finally:
        _stop(server)
    assert _Recorder.hosts == [(f"callbacks.test:{port}", "/cb")]
    assert [body["task_guid"] for body in _Recorder.bodies] == ["t"]


# --- convergence steps 4-6 --------------------------------------------------------------


def converger(at: int) -> Converger:
    return Converger(wiring.tasks(), wiring.task_queue(), get_settings(), now=lambda: at,
                     callbacks=wiring.callback_queue())


def test_step_4_demotes_a_stalled_resolving_task_and_sends_its_callback(backend):
    for guid in ("stalled", "busy"):
        completed(guid, at=T0 - 60 * S)
    wiring.tasks().apply("stalled", lifecycle.resolving(T0 - 31 * S))
    wiring.tasks().apply("busy", lifecycle.resolving(T0 - 5 * S))
    callbacks_queued()
    report = converger(T0).run()
    assert (report.demoted, report.deleted, report.kicked) == (1, 0, 0)
    assert wiring.tasks().get("stalled").state == "Completed"
    assert wiring.tasks().get("busy").state == "Resolving"
    assert callbacks_queued() == ["stalled"]
    assert converger(T0).run().demoted == 0


def test_step_5_deletes_expired_completed_tasks_with_a_callback_only(backend):
    completed("expired", at=T0 - 121 * S)
    completed("recent", at=T0 - 10 * S)
    completed("platform", url="", at=T0 - 10_000 * S)
    callbacks_queued()
    report = converger(T0).run()
    assert (report.deleted, report.kicked) == (1, 0)
    assert wiring.tasks().get("expired") is None
    assert wiring.tasks().get("recent").state == "Completed"
    platform = wiring.tasks().get("platform")
    assert (platform.state, platform.result) == ("Completed", "42")
    assert open_keys() == ["TASK#recent"]


def test_step_5_never_applies_to_platform_tasks_even_when_read():
    settings = get_settings()
    old = TaskRecord(task_guid="p", owner="alice", state="Completed", created_at=1,
                     updated_at=1, first_completed_at=1)
    assert step_for(old, T0, settings) is None
    resolving = old.model_copy(update={"state": "Resolving"})
    assert step_for(resolving, T0, settings) is None


def test_step_6_sends_callbacks_of_completed_tasks_not_updated_for_the_kick(backend):
    completed("stale", at=T0 - 31 * S)
    completed("fresh", at=T0 - 5 * S)
    callbacks_queued()
    report = converger(T0).run()
    assert (report.kicked, report.kick_failures, report.deleted) == (1, 0, 0)
    assert callbacks_queued() == ["stale"]
    assert wiring.tasks().get("stale").state == "Completed"


def test_an_https_callback_that_fails_its_tls_handshake_is_retried_not_crashed(backend):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)  # plain HTTP: no TLS
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        completed("t", url=f"https://callbacks.invalid:{server.server_address[1]}/cb")
        settings = get_settings().model_copy(update={"allow_private_callbacks": True,
                                                     "callback_timeout_s": 2})
        pinned = CallbackDelivery(wiring.tasks(), settings, resolver=lambda host: ["127.0.0.1"])
        assert pinned.deliver("t") == "gave_up"
    finally:
        server.shutdown()
        server.server_close()
    assert wiring.tasks().get("t").state == "Resolving"
