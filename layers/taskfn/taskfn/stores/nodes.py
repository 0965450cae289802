"""Nodes: the machines that run Cell API tasks (GreenCloud's nodes are BBS's cells).

A node is one item, "NODE#<hash>" / "NODE": its hash is also its cell id, so it is unique
across owners (a conditional put), and every cell request finds its node by one GetItem. On
GSI1 as "OWNER#<user>#NODE" / "<created>#<hash>": an owner's nodes, for the list and the
platform metrics. A heartbeat changes only attributes GSI1 does not project, so it writes no
index entry. Convergence finds the disabled nodes of Running tasks by their cell ids (one
BatchGetItem per pass), never by a scan.
"""

from __future__ import annotations

from taskfn.models import NodeRecord
from taskfn.stores.table import Table, time_key

NODE = "NODE"
# An owner's nodes a list reads at most (the list has no paging upstream).
LIST_MAX = 1000


def node_key(hash_: str) -> tuple[str, str]:
    return f"NODE#{hash_}", NODE


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#NODE"


class NodeStore:
    def __init__(self, table: Table):
        self.table = table

    def put_new(self, node: NodeRecord) -> bool:
        """False when a node with this hash exists (anyone's)."""
        pk, sk = node_key(node.hash)
        return self.table.put_new({
            "PK": pk, "SK": sk,
            "GSI1PK": owner_partition(node.owner), "GSI1SK": time_key(node.created_at, node.hash),
            **node.model_dump(mode="json"),
        })

    def get(self, hash_: str, *, consistent: bool = False) -> NodeRecord | None:
        item = self.table.get(*node_key(hash_), consistent=consistent)
        return NodeRecord.model_validate(item) if item else None

    def get_many(self, hashes: list[str]) -> list[NodeRecord]:
        items = self.table.get_many([node_key(h) for h in hashes])
        return [NodeRecord.model_validate(item) for item in items]

    def list(self, owner: str) -> list[NodeRecord]:
        """The owner's nodes, oldest first (one Query of keys, one BatchGetItem)."""
        page = self.table.query("GSI1", owner_partition(owner), limit=LIST_MAX,
                                newest_first=False)
        hashes = [str(item["PK"]).removeprefix("NODE#") for item in page.items]
        found = {node.hash: node for node in self.get_many(hashes)}
        return [found[h] for h in hashes if h in found and found[h].owner == owner]

    def set_disabled(self, hash_: str, owner: str, disabled: bool, at_ns: int) -> bool:
        """Disable or restore the owner's node; False when it is not theirs (or gone)."""
        ok, _ = self.table.update(
            *node_key(hash_),
            set_values={"disabled": disabled, "disabled_at": at_ns if disabled else 0},
            condition="attribute_exists(PK) AND #owner = :c_owner",
            condition_values={"owner": owner}, condition_names={"#owner": "owner"})
        return ok

    def heartbeat(self, hash_: str, at_ns: int, running: int) -> bool:
        """The node is up and runs `running` tasks; False when it is disabled or gone."""
        ok, _ = self.table.update(
            *node_key(hash_), set_values={"heartbeat_at": at_ns, "running": running},
            condition="attribute_exists(PK) AND #disabled = :c_no",
            condition_values={"no": False}, condition_names={"#disabled": "disabled"})
        return ok

    def remove(self, hash_: str) -> None:
        self.table.remove(*node_key(hash_))
