"""The CLI against an API that answers what nobody should: markup, terminal control sequences,
HTML pages, broken JSON, redirects to local files, an answer that stops halfway. A fake API
on 127.0.0.1 plays the platform; each command runs through the real entry point
(`taskfn.cli.app.run`) in this process, its stdout and stderr captured as bytes."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import stat
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskfn.cli import config
from taskfn.cli.app import run
from taskfn.cli.functions import zip_folder
from taskfn.cli.output import CliError, visible

TOKEN = "tfn_unit-test-token-0123456789"
FID = "0123456789abcdef01234567"
TID = "89abcdef0123456789abcdef"
# An OSC 52 clipboard write, an OSC 8 hyperlink, a screen clear, a carriage return that
# overwrites the line, a bidi override, and Rich markup (an unmatched closing tag raises).
EVIL = ("[/dim][link=http://evil.test]x[/link] \x1b]52;c;cm0gLXJmIH4=\x07 "
        "\x1b]8;;http://evil.test\x07click\x1b]8;;\x07 \x1b[2J\rall good \u202eexe.txt :warning:")


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8", "surrogatepass")
        self.headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeApi:
    """Routes by (method, path without query) → a Reply or a function of the request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply | Callable[[Seen], Reply]] = {}
        self.seen: list[Seen] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers),
                            self.rfile.read(length))
                api.seen.append(seen)
                route = api.routes.get((self.command, self.path.split("?")[0]))
                reply = route(seen) if callable(route) else route
                if reply is None:
                    reply = Reply(404, {"message": "no such route"})
                body = reply.encoded()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeApi]:
    api = FakeApi()
    monkeypatch.setenv("TASKFN_API", api.url)
    monkeypatch.setenv("TASKFN_TOKEN", TOKEN)
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("TASKFN_DEBUG", raising=False)
    monkeypatch.setattr("taskfn.cli.functions.POLL_S", 0.01)
    yield api
    api.close()


@dataclass
class Ran:
    code: int
    out: bytes
    err: bytes

    @property
    def error(self) -> str:
        lines = [line for line in self.err.decode().splitlines() if line.startswith("taskfn: ")]
        assert len(lines) == 1, self.err
        return lines[0]


@pytest.fixture
def cli(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., Ran]:
    def invoke(*argv: str) -> Ran:
        code = run(list(argv))
        captured = capsysbinary.readouterr()
        return Ran(code, captured.out, captured.err)

    return invoke


def assert_defanged(output: bytes) -> None:
    """Nothing a terminal acts on, no markup read (the literal tag is still there)."""
    assert b"\x1b" not in output and b"\x07" not in output and b"\r" not in output
    assert "\u202e".encode() not in output
    assert b"Traceback" not in output


def a_function(api: FakeApi, **fields: Any) -> None:
    api.routes[("GET", "/v1/function/list")] = Reply(200, [
        {"id": FID, "name": "hello", "lang": "py", "createdAt": "0", **fields}])


def test_visible_shows_every_control_and_keeps_the_rest():
    assert visible("a\x1b[2Jb\r\n\t\x07\x9b\u202e\ud800é😀") == (
        "a\\x1b[2Jb\\r\\n\\t\\x07\\x9b\\u202e\\ud800é😀")
    assert visible(None) == ""


def test_a_table_shows_hostile_fields_as_text(fake: FakeApi, cli):
    a_function(fake, description=EVIL + "\nfake-id  fake-row")
    ran = cli("fn", "ls")
    assert ran.code == 0, ran
    assert_defanged(ran.out + ran.err)
    shown = ran.out.decode()
    assert "[/dim][link=http://evil.test]x[/link]" in shown  # the text itself, not markup
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown and ":warning:" in shown
    assert "\\nfake-id" in shown  # a newline cannot forge a row of its own
    assert "⚠" not in shown


def test_tasks_show_of_a_hostile_failure_reason(fake: FakeApi, cli):
    fake.routes[("GET", f"/v1/task/{TID}")] = Reply(200, {
        "functionId": FID, "issued": "1", "assigned": "1", "finished": "2", "progress": 100,
        "node": EVIL, "timeout": 10, "triggeredBy": None})
    fake.routes[("POST", "/v1/tasks/get_by_task_guid.r3")] = Reply(200, {
        "error": None, "task": {"failed": True, "failure_reason": "RuntimeError: " + EVIL}})
    ran = cli("tasks", "show", TID)
    assert ran.code == 0, ran
    assert_defanged(ran.out + ran.err)
    assert "failed: RuntimeError: [/dim]" in ran.out.decode()


def test_an_api_error_message_is_one_visible_line(fake: FakeApi, cli):
    fake.routes[("GET", "/v1/function/list")] = Reply(400, {"message": EVIL})
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert_defanged(ran.err)
    assert "(400 from GET /v1/function/list)" in ran.error
    assert "\\x1b]52;c;" in ran.error


def run_wait(fake: FakeApi, result: Reply, *, failed: str | None = None) -> None:
    a_function(fake)
    fake.routes[("POST", f"/v1/task/{FID}")] = Reply(201, {"id": TID})
    fake.routes[("GET", f"/v1/task/{TID}")] = Reply(200, {"finished": "5", "progress": 100})
    fake.routes[("GET", f"/v1/task/{TID}/result")] = result
    fake.routes[("POST", "/v1/tasks/get_by_task_guid.r3")] = Reply(200, {
        "error": None, "task": {"failed": failed is not None, "failure_reason": failed or ""}})


def test_run_wait_writes_the_result_as_is_and_the_status_line_defanged(fake: FakeApi, cli):
    answer = EVIL.encode() + b"\xff raw bytes"
    run_wait(fake, Reply(200, answer, {"Content-Type": "text/[/x]plain\x1b[31m"}))
    ran = cli("run", "hello", "--wait")
    assert ran.code == 0, ran
    assert ran.out == answer  # stdout: exactly what the function answered, like cat
    assert_defanged(ran.err)
    assert "200 text/[/x]plain\\x1b[31m" in ran.err.decode()


def test_run_wait_of_a_failed_task_gives_its_reason_defanged(fake: FakeApi, cli):
    run_wait(fake, Reply(500, {"errorType": "RuntimeError"}), failed="RuntimeError: " + EVIL)
    ran = cli("run", "hello", "--wait")
    assert ran.code == 1
    assert json.loads(ran.out) == {"errorType": "RuntimeError"}
    assert_defanged(ran.err)
    assert f"task {TID} failed (500): RuntimeError: [/dim]" in ran.error


def test_run_sends_no_body_and_no_content_type_without_data(fake: FakeApi, cli):
    run_wait(fake, Reply(200, b"{}"))
    assert cli("run", "hello").code == 0
    (create,) = [s for s in fake.seen if s.method == "POST" and s.path.startswith("/v1/task/")]
    assert create.body == b""
    assert "Content-Type" not in create.headers  # not a form (urllib's default for b"")


def test_a_large_result_is_streamed_from_a_relative_redirect(fake: FakeApi, cli):
    """A 303 whose Location is relative is followed (on the API's host), without the token,
    and the function's status comes from X-Taskfn-Status."""
    big = os.urandom(3 * 1024 * 1024)
    run_wait(fake, Reply(303, b"", {"Location": "/s3/result?sig=1", "X-Taskfn-Status": "207"}))
    fake.routes[("GET", "/s3/result")] = Reply(200, big, {"Content-Type": "application/zip"})
    ran = cli("run", "hello", "--wait")
    assert ran.code == 0, ran.err
    assert ran.out == big
    assert "207 application/zip" in ran.err.decode()
    (download,) = [s for s in fake.seen if s.path.startswith("/s3/")]
    assert "Authorization" not in download.headers


def test_a_redirect_to_a_local_file_is_refused(fake: FakeApi, cli, tmp_path: Path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    run_wait(fake, Reply(303, b"", {"Location": f"file://{secret}"}))
    ran = cli("run", "hello", "--wait")
    assert ran.code == 1
    assert b"PRIVATE KEY" not in ran.out + ran.err
    assert "is not an http(s) URL" in ran.error


@pytest.mark.parametrize("reply", [
    Reply(200, b"<html><body>Sign in to the Wi-Fi</body></html>", {"Content-Type": "text/html"}),
    Reply(200, b'{"truncated": '),
    Reply(200, {"not": "a list"}),
    Reply(502, b"<html>" + b"x" * 500_000 + b"</html>", {"Content-Type": "text/html"}),
])
def test_an_answer_that_is_not_the_apis_is_one_line(fake: FakeApi, cli, reply: Reply):
    fake.routes[("GET", "/v1/function/list")] = reply
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert b"Traceback" not in ran.err
    assert "GET /v1/function/list" in ran.error and len(ran.error) < 500


def test_fields_missing_from_an_answer_are_one_line(fake: FakeApi, cli):
    fake.routes[("GET", "/v1/function/list")] = Reply(200, [{"nothing": "expected"}])
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert b"Traceback" not in ran.err and "unexpected answer" in ran.error


def test_an_answer_that_stops_halfway_is_one_line(fake: FakeApi, cli):
    fake.routes[("GET", "/v1/function/list")] = Reply(200, b"[", {
        "Content-Length": "1000", "Content-Type": "application/json", "Connection": "close"})
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert b"Traceback" not in ran.err and "broke off, 999 bytes short" in ran.error


def test_a_server_that_does_not_speak_http_is_one_line(monkeypatch, cli, tmp_path: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def babble() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        connection.close()

    threading.Thread(target=babble, daemon=True).start()
    monkeypatch.setenv("TASKFN_API", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("TASKFN_TOKEN", TOKEN)
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "none.json"))
    ran = cli("fn", "ls")
    listener.close()
    assert ran.code == 1
    assert b"Traceback" not in ran.err and "cannot reach" in ran.error


@pytest.mark.parametrize(("api", "token", "said"), [
    ("127.0.0.1:3000", TOKEN, "must be an http(s) URL"),  # no scheme: urllib's ValueError
    ("http://127.0.0.1:3000", TOKEN + "\r\nX-Injected: 1", "the token holds"),
])
def test_settings_that_cannot_work_are_one_line_without_the_token(monkeypatch, cli, api, token,
                                                                   said, tmp_path: Path):
    monkeypatch.setenv("TASKFN_API", api)
    monkeypatch.setenv("TASKFN_TOKEN", token)
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "none.json"))
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert said in ran.error and TOKEN not in ran.err.decode()


def test_the_token_never_appears_in_an_error(fake: FakeApi, cli):
    fake.routes[("GET", "/v1/function/list")] = Reply(401, {"message": f"bad token {TOKEN}"})
    ran = cli("fn", "ls")
    assert ran.code == 1
    assert TOKEN not in ran.err.decode() and "bad token ***" in ran.error


@pytest.mark.parametrize(("argv", "said"), [
    (["run", "hello", "--query", "steps"], "--query takes name=value"),
    (["run", "hello", "--data", "{oops"], "--data is not JSON"),
    (["run", "hello", "--data", "@/nonexistent/body.json"], "cannot read /nonexistent"),
    (["run", "hello", "--idempotency-key", "a\nb"], "--idempotency-key takes"),
    (["schedule", "create", "hello", "--cron", "* * * * *", "-q", "x"], "--query takes"),
    (["jobs", "enqueue", "g", "--image", "i", "--command", "c", "--env", "X"], "--env takes"),
    (["jobs", "enqueue", "g", "--image", "i", "--command", "c", "--metadata", "{"], "--metadata"),
    (["login", "--api", "ftp://x", "--token", "-"], "--api must be an http(s) URL"),
])
def test_usage_errors_exit_2_before_any_request(fake: FakeApi, cli, argv, said):
    a_function(fake)
    ran = cli(*argv)
    assert ran.code == 2, ran
    assert said in ran.error
    assert fake.seen == []  # nothing was sent (no task made by a run that then fails)


def test_a_query_value_that_is_not_utf8_is_sent_as_its_bytes(fake: FakeApi, cli):
    run_wait(fake, Reply(200, b"{}"))
    raw = os.fsdecode(b"caf\xe9")  # a shell's argument in Latin-1: a surrogate escape
    assert cli("run", "hello", "-q", f"name={raw}").code == 0
    (create,) = [s for s in fake.seen if s.method == "POST" and s.path.startswith("/v1/task/")]
    assert create.path.endswith("?name=caf%E9")


def test_logs_are_written_as_the_task_wrote_them(fake: FakeApi, cli):
    fake.routes[("GET", f"/v1/task/{TID}/logs")] = Reply(
        200, '{"stdout": "[bold]x\\u001b[31m\\ud800 \\udcff", "stderr": "e\\r", '
             '"stdoutDropped": "[/x]", "stderrDropped": 0}')
    ran = cli("logs", TID)
    assert ran.code == 0, ran
    assert ran.out == b"[bold]x\x1b[31m\xef\xbf\xbd \xff"  # U+FFFD; the byte it escaped
    assert ran.err.startswith(b"e\r") and b"([/x] bytes of stdout were not kept)" in ran.err


def test_logs_of_a_hostile_task_id_given_by_the_api(fake: FakeApi, cli):
    fake.routes[("GET", "/v1/task/list")] = Reply(200, [{"id": "[/dim]\x1b[2J"}])
    fake.routes[("GET", "/v1/task/[/dim]%1B[2J/logs")] = Reply(200, {"stdout": "ok\n"})
    ran = cli("logs")
    assert b"Traceback" not in ran.err
    assert_defanged(ran.err)


def test_json_output_escapes_what_json_dumps_leaves_raw(fake: FakeApi, cli):
    a_function(fake, description="\x9b31m\u202e\x7f")
    ran = cli("fn", "ls", "--json")
    assert ran.code == 0
    assert json.loads(ran.out)[0]["description"] == "\x9b31m\u202e\x7f"
    assert "\x9b".encode() not in ran.out and "\u202e".encode() not in ran.out


def test_csv_to_a_file_leaves_the_old_file_when_the_download_breaks(fake: FakeApi, cli,
                                                                      tmp_path: Path):
    a_function(fake)
    target = tmp_path / "tasks.csv"
    target.write_text("the export of yesterday\n")
    target.chmod(0o600)
    fake.routes[("GET", f"/v1/task/{FID}/csv")] = Reply(200, b"ID,IssuedAt\nabc,", {
        "Content-Length": "100000", "Content-Type": "text/csv", "Connection": "close"})
    ran = cli("csv", "hello", "-o", str(target))
    assert ran.code == 1 and b"Traceback" not in ran.err
    assert target.read_text() == "the export of yesterday\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.csv"]  # no partial file
    fake.routes[("GET", f"/v1/task/{FID}/csv")] = Reply(200, b"ID,IssuedAt\n",
                                                        {"Content-Type": "text/csv"})
    ran = cli("csv", "hello", "-o", str(target))
    assert ran.code == 0, ran
    assert target.read_text() == "ID,IssuedAt\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # a private file stays private
    ran = cli("csv", "hello", "-o", str(tmp_path))  # a folder: one line, nothing left
    assert ran.code == 1 and b"Traceback" not in ran.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.csv"]


def test_schedule_create_removes_a_half_made_schedule(fake: FakeApi, cli):
    a_function(fake)
    fake.routes[("POST", "/v1/scheduled")] = Reply(201, {"id": "sched1"})
    fake.routes[("PUT", "/v1/scheduled/sched1/payload")] = Reply(413, {"message": "too big"})
    fake.routes[("DELETE", "/v1/scheduled/sched1")] = Reply(204)
    ran = cli("schedule", "create", "hello", "--cron", "* * * * *", "-d", '{"a": 1}')
    assert ran.code == 1 and "too big" in ran.error
    assert ("DELETE", "/v1/scheduled/sched1") in [(s.method, s.path) for s in fake.seen]


def test_a_hostile_group_name_in_messages(fake: FakeApi, cli):
    group = "[/dim]\x1b]8;;http://evil.test\x07"
    path = "/tasks/%5B%2Fdim%5D%1B%5D8%3B%3Bhttp%3A%2F%2Fevil.test%07"
    fake.routes[("POST", path)] = Reply(200, {
        "jobId": "j1", "executionId": "e1", "queueJobId": None, "taskId": group})
    fake.routes[("GET", path)] = Reply(200, {"jobs": []})
    ran = cli("jobs", "enqueue", group, "--image", "i", "--command", "c")
    assert ran.code == 0 and ran.out == b"j1\n"
    assert_defanged(ran.err)
    ran = cli("jobs", "ls", group)
    assert ran.code == 0 and b"Traceback" not in ran.err
    assert_defanged(ran.err)


# The zip of a folder: only the folder's own regular files.

def test_the_zip_follows_no_symlink_and_reads_no_fifo(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("PRIVATE KEY")
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "main.py").write_text("def handler(event, context):\n    return 1\n")
    (folder / "passwd").symlink_to("/etc/passwd")
    (folder / "key").symlink_to(outside / "id_rsa")
    (folder / "ssh").symlink_to(outside, target_is_directory=True)
    (folder / "ssh2").symlink_to(outside / "missing")  # dangling
    with zipfile.ZipFile(io.BytesIO(zip_folder(folder))) as archive:
        assert archive.namelist() == ["main.py"]
    os.mkfifo(folder / "pipe")  # read, it would wait forever for a writer
    left_out: list[str] = []
    with zipfile.ZipFile(io.BytesIO(zip_folder(folder, left_out))) as archive:
        assert archive.namelist() == ["main.py"]
        assert b"PRIVATE KEY" not in b"".join(archive.read(n) for n in archive.namelist())
    assert sorted(left_out) == ["key", "passwd", "pipe", "ssh/", "ssh2"]


def test_a_main_py_that_is_a_symlink_is_refused(tmp_path: Path):
    (tmp_path / "real.py").write_text("def handler(e, c):\n    return 1\n")
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "main.py").symlink_to(tmp_path / "real.py")
    with pytest.raises(CliError, match="is a symlink"):
        zip_folder(folder)


def test_a_folder_past_the_builds_limits_is_refused_before_it_is_read(tmp_path: Path,
                                                                      monkeypatch):
    monkeypatch.setattr("taskfn.cli.functions.MAX_UNZIPPED_BYTES", 1000)
    (tmp_path / "main.py").write_text("def handler(e, c):\n    return 1\n")
    with (tmp_path / "data.bin").open("wb") as file:
        file.truncate(10**12)  # sparse: a terabyte that is never read
    with pytest.raises(CliError, match="more than 1000 bytes"):
        zip_folder(tmp_path)


def test_an_unreadable_file_is_one_line(fake: FakeApi, cli, tmp_path: Path, monkeypatch):
    (tmp_path / "main.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "secret.py").write_text("x")
    real_open = os.open

    def refuse(path, *args, **kwargs):  # as a file of mode 0 is for anyone but root
        if str(path).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("taskfn.cli.functions.os.open", refuse)
    ran = cli("fn", "deploy", str(tmp_path), "--name", "fn")
    assert ran.code == 1 and "cannot read secret.py" in ran.error


# The config file.

def test_config_save_never_writes_through_a_planted_link(tmp_path: Path, monkeypatch):
    """Whatever waits at the path or beside it (a symlink to elsewhere, a file of mode
    0644, a temporary name taken): the token goes into a new 0600 file at the path only."""
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "config.json"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours\n")
    for pid_guess in range(os.getpid() - 5, os.getpid() + 5):  # the old names, planted
        (tmp_path / f".config.json.{pid_guess}.tmp").symlink_to(elsewhere)
    (tmp_path / "config.json").symlink_to(elsewhere)
    path = config.save("http://example.test", "tfn_secret-token")
    assert elsewhere.read_text() == "not yours\n"
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["token"] == "tfn_secret-token"
    path.chmod(0o644)
    config.save("http://example.test", "tfn_secret-token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_config_file_others_may_read_is_warned_about(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("TASKFN_API", raising=False)
    monkeypatch.delenv("TASKFN_TOKEN", raising=False)
    path = config.save("http://example.test", "tfn_secret-token")
    config.settings()
    assert capsys.readouterr().err == ""
    path.chmod(0o644)
    config.settings()
    warning = capsys.readouterr().err
    assert "may be read by other users" in warning and "tfn_secret-token" not in warning


def test_a_config_that_cannot_be_written_is_one_line(fake: FakeApi, cli, tmp_path: Path,
                                                      monkeypatch):
    fake.routes[("GET", "/v1/function/list")] = Reply(200, [])
    (tmp_path / "taken").mkdir()
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "taken"))  # a folder is there
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    ran = cli("login", "--api", fake.url, "--token", "-")
    assert ran.code == 1 and "cannot write" in ran.error


def test_an_id_is_one_path_segment(fake: FakeApi, cli):
    """An id (typed, or handed over by the API) cannot walk to another route."""
    fake.routes[("GET", "/v1/task/list")] = Reply(200, [{"id": "../function/list?x="}])
    cli("logs")
    cli("tasks", "show", "../tokens")
    paths = [s.path for s in fake.seen]
    assert "/v1/task/..%2Ffunction%2Flist%3Fx%3D/logs" in paths
    assert "/v1/task/..%2Ftokens" in paths


def test_login_warns_when_the_token_would_cross_the_network_in_clear(monkeypatch, cli,
                                                                     tmp_path: Path):
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "config.json"))
    asked = []
    monkeypatch.setattr("taskfn.cli.login.Api.request",
                        lambda self, *args, **kwargs: asked.append(self.base))
    for api, warned in (("http://platform.example", True), ("https://platform.example", False),
                        ("http://127.0.0.1:3000", False)):
        monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
        ran = cli("login", "--api", api, "--token", "-")
        assert ran.code == 0, ran
        assert (b"plain http" in ran.err) is warned
        assert TOKEN.encode() not in ran.err
    assert asked == ["http://platform.example", "https://platform.example",
                     "http://127.0.0.1:3000"]
