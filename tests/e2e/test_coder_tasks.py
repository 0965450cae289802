"""Coder's tasks API over HTTP as a new user runs it with `taskfn local`: a conversation of
three turns with a real function, its logs, pause and its snapshot, an input edit, resume,
delete; the same task by id through the platform API. The token goes as Coder's clients
send it (Coder-Session-Token)."""

from __future__ import annotations

import time

import pytest

from tests import coder_sdk as sdk

from .conftest import Answer, Client
from .test_platform_flow import zip_of

pytestmark = pytest.mark.e2e

AGENT = """\
def handler(event, context):
    context.report_state("working", "reading " + event["input"])
    turn = len(event["history"]) // 2 + 1
    context.report_state("idle", "turn %d done" % turn)
    return "turn %d: %s" % (turn, event["input"][::-1])
"""


def coder_call(user: Client, method: str, path: str, body=None) -> Answer:
    return Client(user.url).request(method, path, body,
                                    headers={"Coder-Session-Token": user.token})


def wait_status(user: Client, task_id: str, wanted: str, timeout: float = 60) -> dict:
    """The task once its status is `wanted` (a turn runs in a sandbox: well under a second)."""
    deadline = time.monotonic() + timeout
    while True:
        task = coder_call(user, "GET", f"/api/v2/tasks/me/{task_id}").json()
        idle = task["current_state"] and task["current_state"]["state"] == "idle"
        if task["status"] == wanted and (wanted != "active" or idle):
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def template_version(user: Client) -> str:
    created = user.request("POST", "/v1/function", {"name": "agent", "lang": "PY"})
    assert created.status == 201, created
    build = user.request("POST", f"/v1/build/{created.json()['id']}",
                         zip_of({"main.py": AGENT}), content_type="application/octet-stream")
    assert build.status == 201, build
    build_id = build.json()["id"]
    return f"{build_id[:8]}-{build_id[8:12]}-{build_id[12:16]}-{build_id[16:20]}-" \
           f"{build_id[20:]}00000000"


def test_a_new_user_s_conversation(user: Client):
    request = sdk.go_request_body("CreateTaskRequest", template_version_id=template_version(
        user), input="Write a haiku")
    created = coder_call(user, "POST", "/api/v2/tasks/me", request)
    assert created.status == 201, created
    task = created.json()
    sdk.assert_matches(task, "Task", strict=True)
    task_id = task["id"]
    assert task["name"].startswith("write-a-haiku-")
    wait_status(user, task_id, "active")
    for text in ("shorter", "in French"):
        sent = coder_call(user, "POST", f"/api/v2/tasks/me/{task_id}/send",
                          sdk.go_request_body("TaskSendRequest", input=text))
        assert sent.status == 204, sent
        found = wait_status(user, task_id, "active")
        assert found["workspace_build_number"] in (2, 3)
    found = wait_status(user, task_id, "active")
    assert found["current_state"]["message"] == "turn 3 done"

    logs = coder_call(user, "GET", f"/api/v2/tasks/me/{task_id}/logs").json()
    sdk.assert_matches(logs, "TaskLogsResponse", strict=True)
    assert [(e["type"], e["content"]) for e in logs["logs"]] == [
        ("input", "Write a haiku"), ("output", "turn 1: ukiah a etirW"),
        ("input", "shorter"), ("output", "turn 2: retrohs"),
        ("input", "in French"), ("output", "turn 3: hcnerF ni")]

    paused = coder_call(user, "POST", f"/api/experimental/tasks/me/{task_id}/pause")
    assert paused.status == 202, paused
    sdk.assert_matches(paused.json(), "PauseTaskResponse")
    snapshot = coder_call(user, "GET", f"/api/v2/tasks/me/{task_id}/logs").json()
    assert snapshot["snapshot"] is True and snapshot["snapshot_at"]
    assert snapshot["logs"] == logs["logs"]
    refused = coder_call(user, "POST", f"/api/v2/tasks/me/{task_id}/send", {"input": "more"})
    assert refused.status == 409 and refused.json()["message"] == "Task is paused."

    edited = coder_call(user, "PATCH", f"/api/v2/tasks/me/{task_id}/input",
                        sdk.go_request_body("UpdateTaskInputRequest", input="Write a sonnet"))
    assert edited.status == 204, edited
    resumed = coder_call(user, "POST", f"/api/experimental/tasks/me/{task_id}/resume")
    assert resumed.status == 202, resumed
    sdk.assert_matches(resumed.json(), "ResumeTaskResponse")
    found = wait_status(user, task_id, "active")
    assert found["initial_prompt"] == "Write a sonnet"

    # The same record through the platform API, by its id.
    platform = user.request("GET", f"/v1/task/{task_id}")
    assert platform.status == 200 and platform.json()["finished"], platform
    assert user.request("GET", f"/v1/task/{task_id}/result").body == b"turn 3: hcnerF ni"

    deleted = coder_call(user, "DELETE", f"/api/v2/tasks/me/{task_id}")
    assert deleted.status == 202, deleted
    gone = coder_call(user, "GET", f"/api/v2/tasks/me/{task_id}")
    assert gone.status == 404 and set(gone.json()) <= {"message", "detail", "validations"}
    assert user.request("GET", f"/v1/task/{task_id}").status == 404
