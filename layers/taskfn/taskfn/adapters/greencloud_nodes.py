"""GreenCloud's nodes (/v1/node) and platform metrics (/v1/metrics): views."""

from __future__ import annotations

from typing import Any

from taskfn.adapters.greencloud import rfc3339
from taskfn.models import NodeRecord
from taskfn.services.nodes import available
from taskfn.settings import Settings


def node_view(node: NodeRecord, now: int, settings: Settings) -> dict[str, Any]:
    """The reference's {hash, description, available, disabled}, and taskfn's own fields."""
    up = available(node, now, settings)
    return {
        "hash": node.hash,
        "description": node.description,
        "available": up,
        "disabled": node.disabled,
        "busy": up and node.running > 0,
        "running": node.running,
        "privileged": node.privileged,
        "shared": node.shared,
        "lastHeartbeat": rfc3339(node.heartbeat_at) if node.heartbeat_at else None,
        "createdAt": rfc3339(node.created_at),
    }


def metrics_view(counters: dict[str, int], nodes: list[NodeRecord], now: int,
                 settings: Settings) -> dict[str, int]:
    """{pendingTasks, pendingBuilds, activeNodes, freeNodes, busyNodes, todayTasks,
    completedTasks}: nodes from their heartbeats, tasks and builds from counters."""
    active = [node for node in nodes if available(node, now, settings)]
    busy = sum(1 for node in active if node.running > 0)
    return {
        "pendingTasks": counters["pendingTasks"],
        "pendingBuilds": counters["pendingBuilds"],
        "activeNodes": len(active),
        "freeNodes": len(active) - busy,
        "busyNodes": busy,
        "todayTasks": counters["todayTasks"],
        "completedTasks": counters["completedTasks"],
    }
