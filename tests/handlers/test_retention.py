"""Expired tasks through the handlers: each API answers its own 404 saying so (GreenCloud's
{"message"} with status 404, the Cell API's ResourceNotFound in a 200), never a 500."""

from __future__ import annotations

import json

from taskfn import wiring
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import TaskRecord, now_ns
from taskfn.stores.blobs import task_key
from tests.handlers.test_events import TID, error_of, invoke, load_event


def put(guid: str = TID, **fields) -> None:
    at = now_ns()
    assert wiring.tasks().put_new(TaskRecord(
        task_guid=guid, owner="alice", function_id="f", state=State.COMPLETED, created_at=at,
        updated_at=at, first_completed_at=at, response_status=200, **fields))


def test_greencloud_routes_answer_404_expired_for_a_record_past_its_expiry(backend):
    put(expires_at=now_ns() // SECOND_NS - 1, response_body="done")
    for function_id in ("GetTaskFunction", "GetTaskResultFunction", "GetTaskLogsFunction"):
        status, body = error_of(invoke(function_id, load_event(function_id)))
        assert (status, body["message"]) == (404, "task expired"), function_id
        assert "30 days" in body["detail"]


def test_greencloud_routes_answer_404_expired_for_outputs_s3_removed(backend):
    put(response_key=task_key(TID, "a/result"), stdout_key=task_key(TID, "a/stdout.txt"))
    for function_id in ("GetTaskResultFunction", "GetTaskLogsFunction"):
        status, body = error_of(invoke(function_id, load_event(function_id)))
        assert (status, body["message"]) == (404, "task output expired"), function_id
    assert invoke("GetTaskFunction", load_event("GetTaskFunction"))["statusCode"] == 200


def test_the_cell_api_answers_resource_not_found_for_an_expired_task(backend):
    put("sample-task-1", expires_at=now_ns() // SECOND_NS - 1, task_definition={})
    answer = invoke("CellGetTaskFunction", load_event("CellGetTaskFunction"))
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["error"] == {
        "type": "ResourceNotFound", "message": "task expired: tasks are kept 30 days"}
