"""Nodes and platform metrics in the OpenAPI document (inline JSON Schema)."""

from __future__ import annotations

from taskfn.adapters.greencloud_doc import STRING, _object

TIME = {"type": "string", "format": "date-time"}
BOOLEAN = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 0}
NEW_NODE = _object({
    "description": STRING,
    "privileged": {"type": "boolean", "description": "taskfn: it runs privileged functions'"
                   " tasks (default false)"}})
REGISTERED = _object({
    "hash": STRING, "cellId": {"type": "string", "description": "the cell id its token acts"
                               " as (the hash)"},
    "token": {"type": "string", "description": "the node's cell token, shown only this once"}},
    required=("hash", "cellId", "token"))
NODE = _object({
    "hash": STRING, "description": STRING, "available": BOOLEAN, "disabled": BOOLEAN,
    "busy": BOOLEAN, "running": COUNT, "privileged": BOOLEAN, "shared": BOOLEAN,
    "lastHeartbeat": {"type": ["string", "null"], "format": "date-time"}, "createdAt": TIME},
    required=("hash", "description", "available", "disabled"))
NODES = {"type": "array", "items": NODE}
HEARTBEAT = _object({"running": {"type": "integer", "minimum": 0, "maximum": 10000,
                                 "description": "tasks the node runs now (0: free)"}})
METRICS = _object({name: COUNT for name in (
    "pendingTasks", "pendingBuilds", "activeNodes", "freeNodes", "busyNodes", "todayTasks",
    "completedTasks")}, required=("pendingTasks", "pendingBuilds", "activeNodes", "freeNodes",
                                  "busyNodes", "todayTasks", "completedTasks"))
