"""The schedule handlers with their events: statuses, GreenCloud's shapes and errors."""

from __future__ import annotations

import base64
import json

import pytest

from taskfn import wiring
from tests.handlers.test_events import (  # noqa: F401 - seeded is a fixture
    FID,
    invoke,
    load_event,
    seeded,
)


def call(function_id: str, *, path_id: str | None = None, body=None, query=None,
         user: str = "alice", content_type: str | None = None) -> tuple[int, dict | None]:
    event = load_event(function_id)
    if path_id is not None:
        event["pathParameters"] = {"id": path_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"].replace(
            "6560f1a0dddddddddddddddd", path_id)
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if content_type:
        event["headers"]["content-type"] = content_type
    if query is not None:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    event["requestContext"]["authorizer"]["lambda"]["user"] = user
    answer = invoke(function_id, event)
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


@pytest.mark.usefixtures("seeded")
def test_a_schedule_through_its_handlers():
    status, created = call("CreateScheduleFunction")
    assert status == 201
    sid = created["id"]
    assert call("UpdateScheduleFunction", path_id=sid,
                body={"description": "nightly", "cron": "0 3 * * *"}) == (204, None)
    assert call("SetSchedulePayloadFunction", path_id=sid, body="hello",
                content_type="text/plain", query={"a": "1"}) == (204, None)
    status, view = call("GetScheduleFunction", path_id=sid)
    assert status == 200 and view == {
        "active": True, "functionId": FID, "cron": "0 3 * * *", "timezone": "Europe/Berlin",
        "description": "nightly", "inlinePayload": {
            "query": {"a": "1"}, "body": base64.b64encode(b"hello").decode(),
            "contentType": "text/plain"}}
    status, page = call("ListSchedulesFunction", query={"limit": "3"})
    assert status == 200 and page == {"pageCount": 1, "pageSize": 3, "totalCount": 1,
                                      "results": [{"id": sid, "active": True,
                                                   "functionId": FID, "cron": "0 3 * * *",
                                                   "timezone": "Europe/Berlin",
                                                   "description": "nightly"}]}
    status, tried = call("TryScheduleFunction", path_id=sid)
    assert status == 201
    task = wiring.tasks().get(tried["id"], consistent=True)
    assert task.schedule_id == sid and task.input == {"body": "hello", "query": {"a": "1"}}
    assert call("DeleteScheduleFunction", path_id=sid) == (204, None)
    assert call("GetScheduleFunction", path_id=sid)[0] == 404


@pytest.mark.usefixtures("seeded")
def test_bad_input_is_400_and_others_schedules_404():
    status, error = call("CreateScheduleFunction", body={
        "functionId": FID, "cron": "0 0 31 2 1", "timezone": "UTC"})
    assert status == 400 and "not both" in error["message"]
    status, error = call("CreateScheduleFunction", body={
        "functionId": FID, "cron": "* * * * *", "timezone": "Moon/Base"})
    assert status == 400 and "Moon/Base" in error["message"]
    status, error = call("CreateScheduleFunction", body={"functionId": FID, "cron": "* * * * *"})
    assert status == 400 and "timezone" in error["detail"]
    assert call("CreateScheduleFunction", user="mallory")[0] == 404  # alice's function
    assert call("ListSchedulesFunction", query={"limit": "1000"})[0] == 400
    _, created = call("CreateScheduleFunction")
    sid = created["id"]
    assert call("UpdateScheduleFunction", path_id=sid, body={"cron": "nope"})[0] == 400
    for function_id in ("GetScheduleFunction", "UpdateScheduleFunction",
                        "SetSchedulePayloadFunction", "TryScheduleFunction",
                        "DeleteScheduleFunction"):
        status, error = call(function_id, path_id=sid, user="mallory")
        assert status == 404 and error["message"] == "schedule not found", function_id
    assert call("UpdateScheduleFunction", path_id=sid, body={"cron": "nope"},
                user="mallory")[0] == 404
    assert call("ListSchedulesFunction", user="mallory")[1]["totalCount"] == 0
