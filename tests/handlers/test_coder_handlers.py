"""Coder's tasks API through its handlers, as the seed's Go client calls them: each route's
request as the client builds it (tests/coder_sdk.py parses the client's routes and types),
each answer checked against the SDK's Go types, and Coder's error body on every failure."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest

from taskfn import wiring
from taskfn.adapters import coder
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.python import Execution
from taskfn.services.executor import Executor
from taskfn.settings import get_settings
from tests import coder_sdk as sdk
from tests.handlers.test_events import (  # noqa: F401 - seeded is a fixture
    BID,
    TEMPLATE,
    invoke,
    load_event,
    seeded,
)

ROUTES = {route.name: route for route in sdk.ROUTES}
TEMPLATE_VERSION = coder.id_uuid(BID)
ERROR_KEYS = {"message", "detail", "validations"}


def _function_for(method: str, path: str) -> tuple[str, str]:
    """The template's function (and route) that serves a concrete path."""
    for route in TEMPLATE.routes:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(route.path))
        if route.method == method and re.fullmatch(pattern, path):
            return route.function_id, route.path
    raise LookupError(f"no route for {method} {path}")


def call(method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
         user: str = "alice", raw: str | None = None) -> tuple[int, Any]:
    """The answer of the handler API Gateway would invoke for this request."""
    function_id, template_path = _function_for(method, path)
    event = load_event(function_id)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {template_path}"
    names = re.findall(r"\{([^}]+)\}", template_path)
    values = [part for part, mine in zip(path.split("/"), template_path.split("/"),
                                         strict=True) if mine.startswith("{")]
    event["pathParameters"] = dict(zip(names, values, strict=True)) if names else None
    event["queryStringParameters"] = query
    event["rawQueryString"] = urlencode(query or {})
    event["requestContext"]["authorizer"]["lambda"]["user"] = user
    event.pop("body", None)
    if body is not None or raw is not None:
        event["body"] = raw if raw is not None else json.dumps(body)
    answer = invoke(function_id, event)
    text = answer.get("body") or ""
    return answer["statusCode"], json.loads(text) if text else None


def go_filter(owner: str = "", organization: str = "", status: str = "",
              filter_query: str = "") -> dict[str, str]:
    """TasksFilter.asRequestOption: each given field as key:%q, then the raw query."""
    params = [f"{key}:{json.dumps(value)}" for key, value in (
        ("owner", owner), ("organization", organization), ("status", status)) if value]
    if filter_query:
        params.append(filter_query)
    return {"q": " ".join(params)}


def assert_error(status: int, body: Any, expected: int, message: str | None = None) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) <= ERROR_KEYS and body["message"], body
    if message is not None:
        assert body["message"] == message, body
    for validation in body.get("validations", []):
        assert set(validation) == {"field", "detail"}, body


def run_turn(task_id: str, tmp_path) -> None:
    def runner(code_dir, event, **_):
        return Execution(succeeded=True, timed_out=False, status_code=200,
                         headers={"Content-Type": "text/plain"},
                         body=f"{len(event['history'])}:{event['input']}")

    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                        CodeCache(tmp_path / "code"), "executor-h", get_settings(), runner)
    assert executor.run(task_id) == "succeeded"


@pytest.fixture
def version(seeded):  # noqa: F811 - the fixture, imported above
    """The sample build, with code (the sample events' template version)."""
    build = wiring.builds().get(BID)
    wiring.builds().put(build.model_copy(update={"code_key": seeded.code_key}))
    return TEMPLATE_VERSION


def test_the_go_client_s_calls_and_the_sdk_s_types(version, tmp_path):
    route = ROUTES["CreateTask"]
    request = sdk.go_request_body("CreateTaskRequest", template_version_id=version,
                                  input="Summarise the report", name="Report-Task")
    assert request["template_version_preset_id"] == sdk.ZERO_UUID  # Go sends the zero UUID
    status, task = call(route.method, route.fill(user="me"), request)
    assert status == route.status, task
    sdk.assert_matches(task, "Task", strict=True)
    assert task["status"] == "pending" and task["current_state"] is None
    assert task["template_version_id"] == version and task["initial_prompt"] == request["input"]
    assert task["owner_name"] == "alice" and task["owner_id"] == coder.user_id("alice")
    task_id = task["id"]

    for name, path in (("TaskByID", ROUTES["TaskByID"].fill(id=task_id)),
                       ("TaskByOwnerAndName", ROUTES["TaskByOwnerAndName"].fill(
                           owner="alice", ident="report-task"))):
        status, found = call("GET", path)
        assert status == ROUTES[name].status and found["id"] == task_id, found
        sdk.assert_matches(found, "Task", strict=True)

    status, logs = call("GET", ROUTES["TaskLogs"].fill(user="me", id=task_id))
    assert status == 200 and logs == {"logs": [], "snapshot": True}, logs
    sdk.assert_matches(logs, "TaskLogsResponse", strict=True)

    run_turn(task_id, tmp_path)
    for text in ("and the totals", "thanks"):
        route = ROUTES["TaskSend"]
        status, answer = call(route.method, route.fill(user="me", id=task_id),
                              sdk.go_request_body("TaskSendRequest", input=text))
        assert status == route.status and answer is None, answer
        run_turn(task_id, tmp_path)

    status, listed = call("GET", "/api/v2/tasks", query=go_filter(owner="me", status="active"))
    assert status == 200, listed
    sdk.assert_matches(listed, "TasksListResponse", strict=True)
    assert [t["id"] for t in listed["tasks"]] == [task_id] and listed["count"] == 1
    assert listed["tasks"][0]["workspace_build_number"] == 3

    status, logs = call("GET", ROUTES["TaskLogs"].fill(user="me", id=task_id))
    assert status == 200, logs
    sdk.assert_matches(logs, "TaskLogsResponse", strict=True)
    assert "snapshot" not in logs
    assert [(e["type"], e["content"]) for e in logs["logs"]] == [
        ("input", "Summarise the report"), ("output", "0:Summarise the report"),
        ("input", "and the totals"), ("output", "2:and the totals"),
        ("input", "thanks"), ("output", "4:thanks")]

    route = ROUTES["PauseTask"]
    status, paused = call(route.method, route.fill(user="me", id=task_id))
    assert status == route.status, paused
    sdk.assert_matches(paused, "PauseTaskResponse")
    assert paused["workspace_build"]["transition"] == "stop"
    assert paused["workspace_build_id"] == paused["workspace_build"]["id"]
    status, logs = call("GET", ROUTES["TaskLogs"].fill(user="me", id=task_id))
    assert status == 200 and logs["snapshot"] is True and logs["snapshot_at"], logs
    sdk.assert_matches(logs, "TaskLogsResponse", strict=True)
    assert len(logs["logs"]) == 6

    route = ROUTES["UpdateTaskInput"]
    status, answer = call(route.method, route.fill(user="me", id=task_id),
                          sdk.go_request_body("UpdateTaskInputRequest", input="Summarise it"))
    assert status == route.status, answer
    status, found = call("GET", ROUTES["TaskByID"].fill(id=task_id))
    assert found["initial_prompt"] == "Summarise it" and found["status"] == "paused"

    route = ROUTES["ResumeTask"]
    status, resumed = call(route.method, route.fill(user="me", id=task_id))
    assert status == route.status, resumed
    sdk.assert_matches(resumed, "ResumeTaskResponse")
    assert resumed["workspace_build"]["transition"] == "start"
    # The /api/v2 twins of pause and resume answer alike.
    status, _ = call("POST", f"/api/v2/tasks/me/{task_id}/pause")
    assert status == 202
    status, _ = call("POST", f"/api/v2/tasks/me/{task_id}/resume")
    assert status == 202

    route = ROUTES["DeleteTask"]
    status, answer = call(route.method, route.fill(user="me", id=task_id))
    assert status == route.status and answer is None
    status, body = call("GET", ROUTES["TaskByID"].fill(id=task_id))
    assert_error(status, body, 404, coder.NOT_FOUND)
    status, body = call(route.method, route.fill(user="me", id=task_id))
    assert_error(status, body, 404, coder.NOT_FOUND)


def test_every_failure_is_coder_s_error_body(version):
    _, task = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version, input="hi", name="dup"))
    task_id = task["id"]
    # Duplicate names (whatever their case), bad names, display names, template versions.
    status, body = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version, input="hi", name="DUP"))
    assert_error(status, body, 409)
    assert body["validations"][0]["field"] == "name"
    status, body = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version, input="hi", name="not ok"))
    assert_error(status, body, 400, "Unable to create a Task with the provided name.")
    assert body["detail"]
    status, body = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version, input="hi", display_name="d" * 65))
    assert_error(status, body, 400)
    status, body = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=sdk.ZERO_UUID, input="hi"))
    assert_error(status, body, 400, "Template version not found.")
    # Bad JSON, wrong types, no body: 400, never a 500.
    for raw in ("{not json", "[]", '{"input": 5, "template_version_id": "x"}', "",
                '{"template_version_id": "not-a-uuid", "input": "x"}', "NaN"):
        status, body = call("POST", "/api/v2/tasks/me", raw=raw)
        assert_error(status, body, 400)
    for method, path in (("POST", f"/api/v2/tasks/me/{task_id}/send"),
                         ("PATCH", f"/api/v2/tasks/me/{task_id}/input")):
        status, body = call(method, path, raw="{oops")
        assert_error(status, body, 400, "Request body must be valid JSON.")
        status, body = call(method, path, {"input": ""})
        assert_error(status, body, 400, "Task input is required.")
    # By status: pending.
    status, body = call("POST", f"/api/v2/tasks/me/{task_id}/send", {"input": "more"})
    assert_error(status, body, 409, "Task is pending.")
    status, body = call("PATCH", f"/api/v2/tasks/me/{task_id}/input", {"input": "x"})
    assert_error(status, body, 409, "Unable to update task input, task must be paused.")
    status, body = call("POST", f"/api/experimental/tasks/me/{task_id}/pause")
    assert_error(status, body, 409)
    status, body = call("POST", f"/api/experimental/tasks/me/{task_id}/resume")
    assert_error(status, body, 409, "Task workspace is already running.")
    # The q filter's 400s.
    for q, field in (("foo:bar", "foo"), ("a:b:c", "q"), ("status:nope", "status"),
                     ("owner:bob", "owner")):
        status, body = call("GET", "/api/v2/tasks", query={"q": q})
        assert_error(status, body, 400, "Invalid task search query.")
        assert body["validations"][0]["field"] == field
    # Another owner's task is 404 on every route; no identity is 401 on every route.
    routes = [("GET", f"/api/v2/tasks/me/{task_id}"), ("DELETE", f"/api/v2/tasks/me/{task_id}"),
              ("POST", f"/api/v2/tasks/me/{task_id}/send"),
              ("PATCH", f"/api/v2/tasks/me/{task_id}/input"),
              ("POST", f"/api/experimental/tasks/me/{task_id}/pause"),
              ("POST", f"/api/experimental/tasks/me/{task_id}/resume"),
              ("GET", f"/api/v2/tasks/me/{task_id}/logs"),
              ("GET", "/api/v2/tasks/alice/dup")]
    for method, path in routes:
        status, body = call(method, path, {"input": "x"}, user="mallory")
        assert_error(status, body, 404, coder.NOT_FOUND)
    for method, path in [*routes, ("GET", "/api/v2/tasks"), ("POST", "/api/v2/tasks/me")]:
        status, body = call(method, path, {"input": "x"}, user="")
        assert_error(status, body, 401, coder.SIGNED_OUT)
    status, body = call("GET", "/api/v2/tasks/mallory/dup")  # a name under another user
    assert_error(status, body, 404, coder.NOT_FOUND)


def test_presets_are_a_small_crud_and_a_create_takes_one(version):
    status, preset = call("POST", "/api/v2/taskfn/presets",
                          {"name": "small", "timeout": 20, "input": "Default prompt"})
    assert status == 201 and preset["timeout"] == 20, preset
    for bad in ({"name": ""}, {"name": "x", "timeout": 5}, {"name": "x", "mem_size": "1"}):
        status, body = call("POST", "/api/v2/taskfn/presets", bad)
        assert_error(status, body, 400, "Invalid preset.")
    status, updated = call("PUT", f"/api/v2/taskfn/presets/{preset['id']}",
                           {"name": "small", "timeout": 30, "input": "Default prompt"})
    assert status == 200 and updated["timeout"] == 30, updated
    status, listed = call("GET", "/api/v2/taskfn/presets")
    assert [p["id"] for p in listed] == [preset["id"]]
    assert call("GET", "/api/v2/taskfn/presets", user="bob")[1] == []
    status, body = call("PUT", f"/api/v2/taskfn/presets/{preset['id']}", {"name": "x"},
                        user="bob")
    assert_error(status, body, 404, coder.NOT_FOUND)
    # A create with the preset and no input: the preset's input and its capabilities.
    status, task = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version,
        template_version_preset_id=preset["id"]))
    assert status == 201 and task["initial_prompt"] == "Default prompt", task
    assert wiring.tasks().get(task["id"]).timeout == 30
    status, body = call("POST", "/api/v2/tasks/me", sdk.go_request_body(
        "CreateTaskRequest", template_version_id=version, input="x",
        template_version_preset_id="7d1f0a2b-0000-4000-8000-000000000000"))
    assert_error(status, body, 400, "Template version preset not found.")
    status, _ = call("DELETE", f"/api/v2/taskfn/presets/{preset['id']}")
    assert status == 204
    status, body = call("DELETE", f"/api/v2/taskfn/presets/{preset['id']}")
    assert_error(status, body, 404, coder.NOT_FOUND)
