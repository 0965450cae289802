"""The CLI's pure parts: parsing (Typer's CliRunner), the config file, the error shapes of
each API read back as one line, the zip of a folder, and what the Lambda layer must not get."""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from taskfn.cli import config
from taskfn.cli.app import app, run
from taskfn.cli.client import ApiError, api_message
from taskfn.cli.functions import zip_folder
from taskfn.cli.local import announce_admin_token, data_dir
from taskfn.cli.output import CliError, payload

ROOT = Path(__file__).resolve().parents[2]


def test_local_and_cell_keep_their_flags():
    runner = CliRunner()
    local = runner.invoke(app, ["local", "--help"], env={"COLUMNS": "200"})
    assert local.exit_code == 0
    for flag in ("--host", "--port", "--admin-token", "--data", "--memory"):
        assert flag in local.output
    cell = runner.invoke(app, ["cell", "--help"], env={"COLUMNS": "200"})
    for flag in ("--api", "--token", "--id", "--register", "--token-file", "--description",
                 "--domain", "--tags", "--poll", "--heartbeat", "--timeout"):
        assert flag in cell.output
    assert runner.invoke(app, ["local", "--port", "x"]).exit_code == 2


def test_local_keeps_data_in_dot_taskfn_unless_told():
    assert data_dir(None, False) == Path(".taskfn")
    assert data_dir("/srv/data", False) == Path("/srv/data")
    assert data_dir(None, True) is None
    with pytest.raises(typer.BadParameter, match="not both"):
        data_dir("/srv/data", True)
    both = CliRunner().invoke(app, ["local", "--port", "0", "--data", "d", "--memory"])
    assert both.exit_code == 2 and "not both" in both.output


def test_config_is_written_0600_and_the_variables_win(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "deep" / "config.json"))
    for name in ("TASKFN_API", "TASKFN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(config.NotLoggedIn):
        config.settings()
    previous = os.umask(0)  # a lax umask changes nothing (a real one, not a stub)
    try:
        path = config.save("http://example.test/", "tfn_secret")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600
    assert config.settings() == config.Settings("http://example.test", "tfn_secret")
    monkeypatch.setenv("TASKFN_TOKEN", "tfn_other")
    assert config.settings().token == "tfn_other"
    monkeypatch.setenv("TASKFN_API", "http://other.test")
    assert config.settings().api == "http://other.test"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_the_config_file_is_under_home_unless_told(tmp_path, monkeypatch):
    for name in ("TASKFN_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.config_path() == tmp_path / ".config" / "taskfn" / "config.json"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path() == tmp_path / "xdg" / "taskfn" / "config.json"
    monkeypatch.setenv("TASKFN_CONFIG", str(tmp_path / "given.json"))
    assert config.config_path() == tmp_path / "given.json"


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["logs", "a", "b"], 2, "taskfn: Got unexpected extra argument(s) (b) (see `taskfn logs -h`)"),
    (["tasks", "ls", "--limit", "x"], 2, "taskfn: Invalid value for '--limit'"),
    (["nope"], 2, "taskfn: No such command 'nope'."),
    (["run"], 2, "taskfn: Missing argument 'function'."),
])
def test_usage_errors_are_one_line_too(argv, status, message, capsys):
    assert run(argv) == status
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert "╭" not in captured.err + captured.out  # no box


def test_a_group_without_a_command_shows_its_help(capsys):
    assert run(["fn"]) == 2
    captured = capsys.readouterr()
    assert "deploy" in captured.out and captured.err == ""
    assert run(["fn", "--help"]) == 0


class _Stack:
    def __init__(self, generated: bool, kept: Path | None):
        self.admin_token, self.admin_token_generated = "tfn_secret", generated
        self.admin_token_kept = kept


def test_local_shows_a_new_admin_token_once_and_only_points_at_a_kept_one(capsys):
    announce_admin_token(_Stack(True, Path(".taskfn/admin-token")))
    assert capsys.readouterr().out == "admin token: tfn_secret\n"
    announce_admin_token(_Stack(False, Path(".taskfn/admin-token")))
    shown = capsys.readouterr().out
    assert "tfn_secret" not in shown and ".taskfn/admin-token" in shown
    announce_admin_token(_Stack(False, None))  # given by the variable, in memory
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("body", "message"), [
    (b'{"message": "task not found"}', "task not found"),  # GreenCloud, Coder
    (b'{"message": "bad cron", "detail": "a step is 1 to 60"}', "bad cron: a step is 1 to 60"),
    (b'{"error": "Job not found in task.", "operation": "get_task"}', "Job not found in task."),
    (b"image and command must be filled in the request.",  # fastlane's plain 400s
     "image and command must be filled in the request."),
    (b'{"error": {"type": "ResourceNotFound", "message": "no such task"}}', "no such task"),
    (b"line one\nline two\n", "line one line two"),
    (b"", "Bad Gateway"),
    (b"[1, 2]", "Bad Gateway"),
])
def test_each_apis_error_is_read_into_one_line(body, message):
    assert api_message(body, "Bad Gateway") == message


def test_an_api_error_names_the_request():
    error = ApiError("task not found", status=404, method="GET", path="/v1/task/x")
    assert str(error) == "task not found (404 from GET /v1/task/x)"
    assert "\n" not in api_message(b"x" * 1000 + b"\n" + b"y" * 1000)


def test_payload_is_json_or_a_file(tmp_path):
    assert payload('{"a": 1}') == (b'{"a": 1}', "application/json")
    assert payload(None) == (None, None)
    (tmp_path / "t.txt").write_text("plain words")
    assert payload(f"@{tmp_path / 't.txt'}") == (b"plain words", "text/plain")
    (tmp_path / "b.bin").write_bytes(b"\xff\x00")
    assert payload(f"@{tmp_path / 'b.bin'}")[1] == "application/octet-stream"
    with pytest.raises(CliError, match="not JSON"):
        payload("{oops")
    with pytest.raises(CliError, match="cannot read"):
        payload(f"@{tmp_path / 'missing'}")


def test_zip_of_a_folder_is_what_a_build_takes(tmp_path):
    (tmp_path / "main.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "util.py").write_text("X = 1\n")
    for skipped in ("__pycache__", ".git"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "junk").write_text("x")
    (tmp_path / ".env").write_text("SECRET=1")
    data = zip_folder(tmp_path)
    assert zip_folder(tmp_path) == data  # the same tree, the same bytes
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["lib/util.py", "main.py"]
    with pytest.raises(CliError, match=r"no main\.py at its top"):
        zip_folder(tmp_path / "lib")


def test_the_example_follows_the_function_contract():
    from taskfn.runtime.packaging import check_zip

    assert check_zip(zip_folder(ROOT / "examples" / "hello")).ok


def test_the_lambda_layer_gets_no_cli_library_and_no_handler_imports_the_cli():
    """The layer is layers/taskfn with its requirements: Typer and Rich stay out of it, and
    so does any import of taskfn.cli from a handler (it would fail in Lambda)."""
    for requirements in (ROOT / "layers" / "taskfn").glob("requirements*.txt"):
        assert not re.search(r"^\s*(typer|rich|click)\b", requirements.read_text(), re.M)
    for handler in (ROOT / "functions").rglob("*.py"):
        assert "taskfn.cli" not in handler.read_text(), handler
    for module in (ROOT / "layers" / "taskfn" / "taskfn").rglob("*.py"):
        if "cli" not in module.relative_to(ROOT / "layers" / "taskfn" / "taskfn").parts:
            assert not re.search(r"^\s*(from|import) (taskfn\.cli|typer|rich)\b",
                                 module.read_text(), re.M), module


def test_json_listing_options_exist_on_every_list_and_show():
    runner = CliRunner()
    for command in (["fn", "ls"], ["fn", "show"], ["tasks", "ls"], ["tasks", "show"],
                    ["schedule", "ls"], ["schedule", "show"], ["jobs", "ls"], ["jobs", "show"]):
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert "--json" in shown.output, command
