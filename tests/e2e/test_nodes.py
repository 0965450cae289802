"""Nodes over real HTTP through `taskfn local`: a user registers a node, its cell token
heartbeats it (available, counted in /v1/metrics), a disabled node's start is refused, and a
restored node starts work again."""

from __future__ import annotations

import uuid

import pytest

from .conftest import Client
from .test_cell_api import bbs

pytestmark = pytest.mark.e2e

METRIC_FIELDS = {"pendingTasks", "pendingBuilds", "activeNodes", "freeNodes", "busyNodes",
                 "todayTasks", "completedTasks"}


def node_of(user: Client, node_hash: str) -> dict:
    answer = user.request("GET", "/v1/node/list")
    assert answer.status == 200, answer
    (node,) = [node for node in answer.json() if node["hash"] == node_hash]
    return node


def metrics(user: Client) -> dict[str, int]:
    answer = user.request("GET", "/v1/metrics")
    assert answer.status == 200, answer
    assert set(answer.json()) == METRIC_FIELDS
    return answer.json()


def test_a_node_registered_heartbeats_disabled_and_restored(stack: Client, user: Client):
    node_hash = f"e2e-node-{uuid.uuid4().hex[:8]}"
    answer = user.request("POST", f"/v1/node/{node_hash}", {"description": "an e2e node"})
    assert answer.status == 201, answer
    registered = answer.json()
    assert (registered["hash"], registered["cellId"]) == (node_hash, node_hash)
    cell = user.as_user(registered["token"])
    assert user.request("POST", f"/v1/node/{node_hash}", {}).status == 409

    node = node_of(user, node_hash)
    assert (node["description"], node["available"], node["disabled"]) == (
        "an e2e node", False, False)
    assert cell.request("POST", f"/v1/node/{node_hash}/heartbeat", {"running": 0}).status == 204
    node = node_of(user, node_hash)
    assert (node["available"], node["busy"]) == (True, False)
    active = metrics(user)["activeNodes"]
    assert active >= 1 and metrics(user)["freeNodes"] >= 1

    domain, task_guid = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-{uuid.uuid4().hex}"
    assert bbs(user, "desire.r2", {"task_guid": task_guid, "domain": domain, "task_definition": {
        "placement_tags": ["e2e-nodes"]}}) == {"error": None}

    assert user.request("DELETE", f"/v1/node/{node_hash}").status == 204
    assert node_of(user, node_hash)["disabled"] is True
    assert node_of(user, node_hash)["available"] is False
    assert metrics(user)["activeNodes"] <= active - 1
    refused = cell.request("POST", "/v1/tasks/start",
                           {"task_guid": task_guid, "cell_id": node_hash})
    assert refused.status == 403 and refused.json()["error"]["type"] == "Forbidden", refused
    assert cell.request("POST", f"/v1/node/{node_hash}/heartbeat", {"running": 0}).status == 403
    task = bbs(user, "get_by_task_guid.r3", {"task_guid": task_guid})["task"]
    assert task["state"] == "Pending"

    restored = user.request("PATCH", f"/v1/node/{node_hash}")
    assert restored.status == 200, restored
    assert (restored.json()["hash"], restored.json()["disabled"]) == (node_hash, False)
    assert bbs(cell, "start", {"task_guid": task_guid, "cell_id": node_hash}) == {
        "error": None, "should_start": True}
    assert cell.request("POST", f"/v1/node/{node_hash}/heartbeat", {"running": 1}).status == 204
    node = node_of(user, node_hash)
    assert (node["available"], node["busy"], node["running"]) == (True, True, 1)
    assert metrics(user)["busyNodes"] >= 1
    assert bbs(cell, "complete", {"task_guid": task_guid, "cell_id": node_hash, "failed": False,
                                  "result": "done"}) == {"error": None}
