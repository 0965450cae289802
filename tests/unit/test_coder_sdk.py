"""tests/coder_sdk.py: the seed parses to the types and routes the Go client has, and the
checker catches each kind of defect an API answer could have, so later API tests can lean
on it."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus

import pytest

from tests import coder_sdk as sdk
from tests.coder_sdk import (
    ENUMS,
    EXTERNAL_TYPES,
    ROUTE_IO,
    ROUTES,
    STRUCTS,
    ZERO_UUID,
    ParseError,
    assert_matches,
    check,
    go_request_body,
    go_zero,
    parse_seed,
    request_fields,
)

ID = "0b4f3c52-6a1e-4d0f-9a4b-2f6a1c9d7e10"
ORG = "9d2a8b7c-1e3f-4a5b-8c6d-7e8f9a0b1c2d"


def valid_task() -> dict:
    """A Task as a Go server would write it: every non-omitempty field, Go's formats."""
    return {
        "id": ID,
        "organization_id": ORG,
        "owner_id": "5c9e0f1a-2b3c-4d5e-8f6a-7b8c9d0e1f2a",
        "owner_name": "alice",
        "owner_avatar_url": "",
        "name": "fix-the-bug-1a2b",
        "display_name": "Fix the bug",
        "template_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        "template_version_id": "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        "template_name": "claude",
        "template_display_name": "Claude",
        "template_icon": "/icon/claude.svg",
        "workspace_id": None,
        "workspace_name": "",
        "workspace_status": "running",
        "workspace_build_number": 3,
        "workspace_agent_id": None,
        "workspace_agent_lifecycle": None,
        "workspace_agent_health": None,
        "workspace_app_id": None,
        "initial_prompt": "Fix the bug",
        "status": "active",
        "current_state": {
            "timestamp": "2026-12-03T18:22:01.123456789Z",
            "state": "working",
            "message": "Reading the code",
            "uri": "",
        },
        "created_at": "2026-12-03T18:20:00Z",
        "updated_at": "2026-12-03T18:22:01.5+01:00",
    }


def valid_build() -> dict:
    return {
        "id": ID,
        "transition": "stop",
        "status": "stopping",
        "created_at": "2026-12-03T18:20:00Z",
    }


# --------------------------------------------------------------------------- the parse


TASK_FIELDS = [
    ("ID", "id", "uuid.UUID"),
    ("OrganizationID", "organization_id", "uuid.UUID"),
    ("OwnerID", "owner_id", "uuid.UUID"),
    ("OwnerName", "owner_name", "string"),
    ("OwnerAvatarURL", "owner_avatar_url", "string"),
    ("Name", "name", "string"),
    ("DisplayName", "display_name", "string"),
    ("TemplateID", "template_id", "uuid.UUID"),
    ("TemplateVersionID", "template_version_id", "uuid.UUID"),
    ("TemplateName", "template_name", "string"),
    ("TemplateDisplayName", "template_display_name", "string"),
    ("TemplateIcon", "template_icon", "string"),
    ("WorkspaceID", "workspace_id", "uuid.NullUUID"),
    ("WorkspaceName", "workspace_name", "string"),
    ("WorkspaceStatus", "workspace_status", "WorkspaceStatus"),
    ("WorkspaceBuildNumber", "workspace_build_number", "int32"),
    ("WorkspaceAgentID", "workspace_agent_id", "uuid.NullUUID"),
    ("WorkspaceAgentLifecycle", "workspace_agent_lifecycle", "*WorkspaceAgentLifecycle"),
    ("WorkspaceAgentHealth", "workspace_agent_health", "*WorkspaceAgentHealth"),
    ("WorkspaceAppID", "workspace_app_id", "uuid.NullUUID"),
    ("InitialPrompt", "initial_prompt", "string"),
    ("Status", "status", "TaskStatus"),
    ("CurrentState", "current_state", "*TaskStateEntry"),
    ("CreatedAt", "created_at", "time.Time"),
    ("UpdatedAt", "updated_at", "time.Time"),
]


def test_task_has_all_its_fields_in_order():
    task = STRUCTS["Task"]
    assert [(f.go_name, f.json_name, f.go_type) for f in task.fields] == TASK_FIELDS


def test_task_field_flags():
    task = STRUCTS["Task"]
    omit = {f.json_name for f in task.fields if f.omitempty}
    assert omit == {"owner_avatar_url", "workspace_status", "workspace_build_number"}
    pointers = {f.json_name for f in task.fields if f.pointer}
    assert pointers == {"workspace_agent_lifecycle", "workspace_agent_health", "current_state"}
    assert task.field("id").format == "uuid"
    assert task.field("workspace_id").format == "uuid"
    assert task.field("created_at").format == "date-time"
    assert task.field("status").enums == (
        "pending", "initializing", "active", "paused", "unknown", "error",
    )  # fmt: skip
    assert task.field("status").enums_key == "enums"
    assert task.field("workspace_status").enums == EXTERNAL_TYPES["WorkspaceStatus"].enums
    assert task.field("Name").tags["table"] == "name,default_sort"
    nullable = {f.json_name for f in task.fields if f.nullable}
    assert nullable == {
        "workspace_id", "workspace_agent_id", "workspace_app_id",
        "workspace_agent_lifecycle", "workspace_agent_health", "current_state",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("struct", "fields"),
    [
        ("TaskStateEntry", ["timestamp", "state", "message", "uri"]),
        ("TaskLogEntry", ["id", "content", "type", "time"]),
        ("TaskLogsResponse", ["logs", "snapshot", "snapshot_at"]),
        ("TasksListResponse", ["tasks", "count"]),
        ("PauseTaskResponse", ["workspace_build"]),
        ("ResumeTaskResponse", ["workspace_build"]),
        (
            "CreateTaskRequest",
            ["template_version_id", "template_version_preset_id", "input", "name", "display_name"],
        ),
        ("TaskSendRequest", ["input"]),
        ("UpdateTaskInputRequest", ["input"]),
        ("TasksFilter", ["owner", "organization", "status", "filter_query"]),
    ],
)
def test_structs_parsed(struct, fields):
    assert STRUCTS[struct].json_names == fields
    assert request_fields(struct) == fields


def test_struct_details():
    entry = STRUCTS["TaskStateEntry"]
    assert [f.go_type for f in entry.fields] == ["time.Time", "TaskState", "string", "string"]
    logs = STRUCTS["TaskLogsResponse"]
    assert [(f.go_type, f.omitempty) for f in logs.fields] == [
        ("[]TaskLogEntry", False),
        ("bool", True),
        ("*time.Time", True),
    ]
    assert STRUCTS["TaskLogEntry"].field("id").go_type == "int"
    assert STRUCTS["TasksListResponse"].field("tasks").go_type == "[]Task"
    assert STRUCTS["PauseTaskResponse"].field("workspace_build").go_type == "*WorkspaceBuild"
    create = STRUCTS["CreateTaskRequest"]
    assert [f.omitempty for f in create.fields] == [False, True, False, True, True]
    # Comments inside TasksFilter's body (line breaks lost) do not hide its fields.
    assert STRUCTS["TasksFilter"].field("status").go_type == "TaskStatus"


def test_enums_parsed_from_consts():
    statuses = ("pending", "initializing", "active", "paused", "unknown", "error")
    assert ENUMS["TaskStatus"] == statuses
    assert ENUMS["TaskState"] == ("working", "idle", "complete", "failed")
    assert ENUMS["TaskLogType"] == ("input", "output")


def test_enum_tag_drift_is_reported():
    """The seed's swagger tag says "completed"; the const (what goes on the wire) "complete"."""
    state = STRUCTS["TaskStateEntry"].field("state")
    assert state.enums == ("working", "idle", "completed", "failed")
    assert state.enums_key == "enum"  # not swag's "enums" key either
    assert sdk.enum_tag_disagreements() == [
        "TaskStateEntry.State: tag enum:'working,idle,completed,failed' vs TaskState consts "
        "'working,idle,complete,failed'"
    ]


def test_parse_is_from_the_seed_file():
    schema = parse_seed(sdk.SEED_PATH.read_text(encoding="utf-8"))
    assert schema.structs.keys() == STRUCTS.keys()
    assert schema.routes == ROUTES


def test_parser_on_snippets():
    src = (
        'type Foo struct { // A says "hi". A string `json:"a"` B *int `json:"b,omitempty"` '
        'Skip int `json:"-"` C []Bar `json:""` } type Bar struct { X int `json:"x"` } '
        'type Color string const ( // Red is red ) really. ColorRed Color = "red" '
        'ColorBlue Color = "blue" )'
    )
    schema = parse_seed(src)
    foo = schema.structs["Foo"]
    assert [(f.json_name, f.go_type, f.omitempty) for f in foo.fields] == [
        ("a", "string", False),
        ("b", "*int", True),
        ("C", "[]Bar", False),  # empty json name: Go uses the field name
    ]
    assert schema.enums == {"Color": ("red", "blue")}
    assert schema.routes == []


def test_parser_refuses_untagged_fields():
    with pytest.raises(ParseError, match="cannot account for"):
        parse_seed('type Foo struct { A string B int `json:"b"` }')


def test_parser_refuses_unknown_status():
    src = (
        "func (c *Client) X(ctx context.Context) error { res, err := c.Request(ctx, "
        'http.MethodGet, "/x", nil) if res.StatusCode != http.StatusBogus { return nil } }'
    )
    with pytest.raises(ParseError, match="StatusBogus"):
        parse_seed(src)


# --------------------------------------------------------------------------- routes


EXPECTED_ROUTES = [
    ("CreateTask", "POST", "/api/v2/tasks/{user}", 201),
    ("Tasks", "GET", "/api/v2/tasks", 200),
    ("TaskByID", "GET", "/api/v2/tasks/me/{id}", 200),
    ("TaskByOwnerAndName", "GET", "/api/v2/tasks/{owner}/{ident}", 200),
    ("DeleteTask", "DELETE", "/api/v2/tasks/{user}/{id}", 202),
    ("TaskSend", "POST", "/api/v2/tasks/{user}/{id}/send", 204),
    ("UpdateTaskInput", "PATCH", "/api/v2/tasks/{user}/{id}/input", 204),
    ("PauseTask", "POST", "/api/experimental/tasks/{user}/{id}/pause", 202),
    ("ResumeTask", "POST", "/api/experimental/tasks/{user}/{id}/resume", 202),
    ("TaskLogs", "GET", "/api/v2/tasks/{user}/{id}/logs", 200),
]


def test_routes_are_the_ten_client_calls():
    assert [tuple(r) for r in ROUTES] == EXPECTED_ROUTES
    assert all(isinstance(r.status, HTTPStatus) for r in ROUTES)
    assert "TaskByIdentifier" not in {r.name for r in ROUTES}  # it only delegates


def test_route_helpers():
    by_name = {r.name: r for r in ROUTES}
    send = by_name["TaskSend"]
    assert send.params == ["user", "id"]
    assert send.fill(user="me", id=ID) == f"/api/v2/tasks/me/{ID}/send"
    assert send.matches("post", f"/api/v2/tasks/alice/{ID}/send")
    assert not send.matches("POST", f"/api/v2/tasks/alice/{ID}/input")
    assert not send.matches("GET", f"/api/v2/tasks/alice/{ID}/send")
    assert send.regex().match("/api/v2/tasks/a/b/send").groupdict() == {"user": "a", "id": "b"}
    assert by_name["TaskByID"].fill(id=ID) == f"/api/v2/tasks/me/{ID}"
    with pytest.raises(TypeError, match="missing"):
        send.fill(user="me")


def test_route_io():
    assert ROUTE_IO["CreateTask"] == ("CreateTaskRequest", "Task", False)
    assert ROUTE_IO["Tasks"] == (None, "TasksListResponse", True)
    assert ROUTE_IO["TaskSend"].request == "TaskSendRequest"
    assert ROUTE_IO["UpdateTaskInput"].request == "UpdateTaskInputRequest"
    assert ROUTE_IO["DeleteTask"] == (None, None, False)
    assert ROUTE_IO["PauseTask"].response == "PauseTaskResponse"
    assert ROUTE_IO["TaskLogs"].response == "TaskLogsResponse"
    assert set(ROUTE_IO) == {r.name for r in ROUTES}


# --------------------------------------------------------------------------- valid answers


def test_valid_task_passes():
    assert check(valid_task(), "Task") == []
    assert check(valid_task(), "Task", strict=True) == []
    assert_matches(valid_task(), "Task")


def test_valid_task_with_everything_set():
    task = valid_task()
    task.update(
        workspace_id=ID.upper(),  # any case is a UUID
        workspace_agent_id=ORG,
        workspace_app_id=ORG,
        workspace_agent_lifecycle="ready",
        workspace_agent_health={"healthy": False, "reason": "agent has lost connection"},
    )
    assert check(task, "Task", strict=True) == []


def test_omitempty_fields_may_be_absent():
    task = valid_task()
    for key in ("owner_avatar_url", "workspace_status", "workspace_build_number"):
        del task[key]
    assert check(task, "Task") == []
    assert check({"logs": []}, "TaskLogsResponse") == []


def test_other_valid_answers():
    assert check({"tasks": [valid_task()], "count": 1}, "TasksListResponse") == []
    assert check({"tasks": None, "count": 0}, "TasksListResponse") == []  # nil slice
    logs = {
        "logs": [{"id": 1, "content": "hi", "type": "input", "time": "2026-12-03T18:20:00Z"}],
        "snapshot": True,
        "snapshot_at": "2026-12-03T18:21:00-07:00",
    }
    assert check(logs, "TaskLogsResponse", strict=True) == []
    assert check({**logs, "snapshot_at": None}, "TaskLogsResponse") == []
    assert check({"workspace_build": valid_build()}, "PauseTaskResponse", strict=True) == []
    assert check({"workspace_build": None}, "ResumeTaskResponse") == []
    assert check([valid_task()], "[]Task") == []
    assert check(None, "*TaskStateEntry") == []


def test_complete_state_is_valid_despite_the_tag():
    task = valid_task()
    task["current_state"]["state"] = "complete"
    assert check(task, "Task") == []
    task["current_state"]["state"] = "completed"
    assert check(task, "Task") == [
        '$.current_state.state: "completed" is not a TaskState: one of working, idle, '
        "complete, failed"
    ]


def test_full_upstream_workspace_build_passes_strict():
    build = valid_build() | {
        "updated_at": "2026-12-03T18:20:00Z",
        "workspace_id": ID,
        "workspace_name": "w",
        "build_number": 2,
        "initiator_id": ORG,
        "initiator_name": "alice",
        "job": {"id": ID, "status": "running"},
        "reason": "initiator",
        "resources": [],
        "deadline": None,
        "daily_cost": 0,
    }
    assert check(build, "WorkspaceBuild", strict=True) == []


# --------------------------------------------------------------------------- defects


def broken(path: list, value=..., delete=False) -> dict:
    """valid_task() with one thing changed at path."""
    task = copy.deepcopy(valid_task())
    node = task
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return task


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (broken(["id"], delete=True), "$.id: missing (Task.ID uuid.UUID)"),
        (broken(["created_at"], delete=True), "$.created_at: missing"),
        (broken(["workspace_id"], delete=True), "$.workspace_id: missing"),
        (broken(["current_state"], delete=True), "$.current_state: missing"),
        (broken(["current_state", "uri"], delete=True), "$.current_state.uri: missing"),
        (broken(["owner_name"], 5), "$.owner_name: want string (string), got number"),
        (broken(["workspace_build_number"], "3"), "$.workspace_build_number: want integer"),
        (broken(["workspace_build_number"], 3.0), "$.workspace_build_number: want integer"),
        (broken(["workspace_build_number"], True), "$.workspace_build_number: want integer"),
        (broken(["workspace_build_number"], 2**31), "$.workspace_build_number: 2147483648 over"),
        (broken(["id"], "not-a-uuid"), '$.id: "not-a-uuid" is not a UUID'),
        (broken(["id"], ""), '$.id: "" is not a UUID'),
        (broken(["id"], ID.replace("-", "")), "$.id: "),
        (broken(["id"], 12), "$.id: want UUID string (uuid.UUID), got number"),
        (broken(["workspace_id"], "nope"), '$.workspace_id: "nope" is not a UUID'),
        (broken(["created_at"], "2026-12-03 18:20:00Z"), "$.created_at: "),
        (broken(["created_at"], "2026-12-03T18:20:00"), "not RFC 3339"),  # no zone
        (broken(["created_at"], "2026-02-30T18:20:00Z"), "date out of range"),
        (broken(["created_at"], "2026-12-03T24:00:00Z"), "time of day out of range"),
        (broken(["created_at"], "2026-12-03T18:20:00+25:00"), "zone offset out of range"),
        (broken(["created_at"], 1764786000), "$.created_at: want RFC 3339 string"),
        (broken(["current_state", "timestamp"], "yesterday"), "$.current_state.timestamp:"),
        (broken(["id"], None), "$.id: null, but Go type uuid.UUID is never null"),
        (broken(["name"], None), "$.name: null, but Go type string is never null"),
        (broken(["created_at"], None), "$.created_at: null"),
        (broken(["status"], None), "$.status: null"),
        (broken(["status"], "running"), '$.status: "running" is not a TaskStatus'),
        (broken(["status"], "Active"), '$.status: "Active" is not a TaskStatus'),
        (broken(["workspace_status"], "asleep"), "is not a WorkspaceStatus"),
        (broken(["workspace_agent_lifecycle"], "alive"), "is not a WorkspaceAgentLifecycle"),
        (broken(["current_state", "state"], "busy"), "$.current_state.state: "),
        (broken(["current_state"], "working"), "$.current_state: want object (TaskStateEntry)"),
        (broken(["current_state"], []), "$.current_state: want object (TaskStateEntry), got arr"),
        (broken(["workspace_agent_health"], True), "$.workspace_agent_health: want object"),
        (
            broken(["workspace_agent_health"], {"healthy": "yes"}),
            "$.workspace_agent_health.healthy: want boolean, got string",
        ),
        (broken(["workspace_agent_health"], {}), "$.workspace_agent_health.healthy: missing"),
    ],
)
def test_each_defect_is_caught(task, expected):
    problems = check(task, "Task")
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_wrong_nested_types():
    assert check({"tasks": {}, "count": 0}, "TasksListResponse") == [
        "$.tasks: want array ([]Task), got object"
    ]
    problems = check({"tasks": [valid_task(), {"id": ID}], "count": 2}, "TasksListResponse")
    assert problems[0] == "$.tasks[1].organization_id: missing (Task.OrganizationID uuid.UUID)"
    assert len(problems) == len(STRUCTS["Task"].fields) - 1 - 3  # all but id and omitempty ones
    logs = {"logs": [{"id": "1", "content": "x", "type": "stderr", "time": "now"}]}
    assert check(logs, "TaskLogsResponse") == [
        '$.logs[0].id: want integer (int), got string "1"',
        '$.logs[0].type: "stderr" is not a TaskLogType: one of input, output',
        '$.logs[0].time: "now": not RFC 3339 (want YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm))',
    ]
    build = valid_build() | {"transition": "pause", "status": "paused"}
    del build["created_at"]
    assert check({"workspace_build": build}, "PauseTaskResponse") == [
        "$.workspace_build.created_at: missing (WorkspaceBuild.CreatedAt time.Time)",
        '$.workspace_build.transition: "pause" is not a WorkspaceTransition: one of start, '
        "stop, delete",
        '$.workspace_build.status: "paused" is not a WorkspaceStatus: one of pending, starting, '
        "running, stopping, stopped, failed, canceling, canceled, deleting, deleted",
    ]
    assert check({"workspace_build_id": ID}, "PauseTaskResponse") == [
        "$.workspace_build: missing (PauseTaskResponse.WorkspaceBuild *WorkspaceBuild)"
    ]
    assert check("[]", "Task") == ["$: want object (Task), got string"]


def test_snapshot_types():
    assert check({"logs": [], "snapshot": "true"}, "TaskLogsResponse") == [
        "$.snapshot: want boolean, got string"
    ]
    assert check({"logs": [], "snapshot_at": ""}, "TaskLogsResponse")[0].startswith(
        '$.snapshot_at: "": not RFC 3339'
    )


def test_extra_keys_only_in_strict_mode():
    task = valid_task() | {"workspace_build_id": ID, "ID": ID}
    assert check(task, "Task") == []
    assert check(task, "Task", strict=True) == [
        "$.workspace_build_id: unexpected key for Task",
        "$.ID: unexpected key for Task (did you mean 'id'?)",
    ]
    # Older servers' {workspace_build_id} next to workspace_build: fine unless strict.
    both = {"workspace_build": valid_build(), "workspace_build_id": ID}
    assert check(both, "PauseTaskResponse") == []
    assert len(check(both, "PauseTaskResponse", strict=True)) == 1


def test_times_go_accepts():
    for ok in (
        "2026-12-03T18:20:00Z",
        "2026-12-03T18:20:00.1Z",
        "2026-12-03T18:20:00.123456789-05:30",
        "2024-02-29T00:00:00+00:00",
        sdk.ZERO_TIME,
        sdk.now_rfc3339(),
    ):
        assert check(ok, "time.Time") == [], ok
    for bad in ("2026-12-03T18:20:00.Z", "2026-12-03t18:20:00Z", "2026-12-03T18:20Z",
                "2025-02-29T00:00:00Z", "2026-12-03T18:20:60Z", "26-12-03T18:20:00Z"):  # fmt: skip
        assert check(bad, "time.Time") != [], bad


def test_assert_matches_lists_every_mismatch():
    task = valid_task()
    del task["id"]
    task["status"] = "done"
    with pytest.raises(AssertionError) as info:
        assert_matches(task, "Task")
    text = str(info.value)
    assert "2 mismatch(es) against Task" in text
    assert "$.id: missing" in text
    assert '$.status: "done"' in text


def test_unknown_type_is_an_error_not_a_pass():
    with pytest.raises(KeyError, match="EXTERNAL_TYPES"):
        check("x", "Mystery")


# --------------------------------------------------------------------------- requests


def test_create_request_as_the_go_client_sends_it():
    body = go_request_body("CreateTaskRequest", template_version_id=ID, input="Fix the bug")
    # The zero UUID is an array to encoding/json: omitempty does not drop it.
    assert body == {
        "template_version_id": ID,
        "template_version_preset_id": ZERO_UUID,
        "input": "Fix the bug",
    }
    assert check(body, "CreateTaskRequest", strict=True) == []


def test_create_request_with_everything():
    preset = uuid.UUID(ORG)
    body = go_request_body(
        "CreateTaskRequest",
        TemplateVersionID=uuid.UUID(ID),  # Go names work too; uuid.UUID is stringified
        template_version_preset_id=preset,
        input="",
        name="my-task",
        display_name="My task",
    )
    assert body == {
        "template_version_id": ID,
        "template_version_preset_id": ORG,
        "input": "",  # not omitempty: sent even when empty
        "name": "my-task",
        "display_name": "My task",
    }
    assert list(body) == request_fields("CreateTaskRequest")


def test_zero_values_when_not_given():
    assert go_request_body("CreateTaskRequest") == {
        "template_version_id": ZERO_UUID,
        "template_version_preset_id": ZERO_UUID,
        "input": "",
    }
    assert go_request_body("TaskSendRequest") == {"input": ""}
    assert go_request_body("UpdateTaskInputRequest", input="again") == {"input": "again"}
    assert go_request_body("TasksFilter") == {}  # all omitempty strings


def test_request_body_rejects_what_go_could_not_send():
    with pytest.raises(TypeError, match="no field 'prompt'"):
        go_request_body("TaskSendRequest", prompt="hi")
    with pytest.raises(TypeError, match="given twice"):
        go_request_body("TaskSendRequest", input="a", Input="b")
    with pytest.raises(ValueError, match="not a UUID"):
        go_request_body("CreateTaskRequest", template_version_id="")
    with pytest.raises(ValueError, match="want string"):
        go_request_body("TaskSendRequest", input=5)
    with pytest.raises(KeyError):
        go_request_body("TaskStatus")


def test_request_body_for_responses_follows_the_same_rules():
    """Useful for building expected answers: pointers nil -> null, omitempty zero dropped."""
    body = go_request_body("TaskLogsResponse", logs=[])
    assert body == {"logs": []}
    when = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    body = go_request_body("TaskLogsResponse", snapshot=True, snapshot_at=when)
    assert body == {"logs": None, "snapshot": True, "snapshot_at": "2026-12-03T18:00:00Z"}
    off = datetime(2026, 12, 3, 18, 0, tzinfo=timezone(timedelta(hours=2)))
    assert go_request_body("TaskStateEntry", timestamp=off)["timestamp"] == (
        "2026-12-03T18:00:00+02:00"
    )
    with pytest.raises(ValueError, match="naive"):
        go_request_body("TaskStateEntry", timestamp=datetime(2026, 1, 1))
    task = go_request_body("Task", current_state={"state": "idle"})
    assert task["current_state"] == {
        "timestamp": sdk.ZERO_TIME,
        "state": "idle",
        "message": "",
        "uri": "",
    }
    assert task["workspace_id"] is None  # invalid NullUUID marshals as null
    assert "workspace_status" not in task and "owner_avatar_url" not in task


def test_go_zero():
    assert go_zero("uuid.UUID") == ZERO_UUID
    assert go_zero("uuid.NullUUID") is None
    assert go_zero("time.Time") == "0001-01-01T00:00:00Z"
    assert go_zero("*time.Time") is None
    assert go_zero("[]Task") is None
    assert go_zero("int32") == 0
    assert go_zero("bool") is False
    assert go_zero("TaskStatus") == ""
    assert go_zero("WorkspaceAgentHealth") == {"healthy": False}
