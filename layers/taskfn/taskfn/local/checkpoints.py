"""Where each stream mapping has read its table's stream to, kept in moto itself.

Lambda's event-source mapping remembers its position in a stream; the local pollers start at
TRIM_HORIZON, which on a kept table would deliver every record again. With a data directory
the pollers save their positions in a small table of moto's, so the positions are in the same
snapshot as the records they point into: after a restart a mapping goes on from where that
snapshot says it was (records delivered after it are delivered again, as Lambda may).

The snapshot also drops the records every mapping of a stream has read (local/persistence.py
`trim_streams`), or moto's stream, which keeps every record forever, would be most of it.
A mapping saves its (empty) position as soon as it starts, so none is skipped over.
"""

from __future__ import annotations

import json
from typing import Any

from taskfn.local.provision import ensure_key_table

SUFFIX = "-stream-positions"  # the table's name ends so (persistence finds it by the name)

class StreamCheckpoints:
    """{shard id: last sequence number delivered} per function and its stream, in the table
    `<prefix>-stream-positions` (created here)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.table = prefix + SUFFIX

    def create(self) -> None:
        ensure_key_table(self.client, self.table, "id")

    def load(self, function_id: str, stream_arn: str) -> dict[str, str] | None:
        """The kept position; None for a mapping that never started on this stream (a
        position in another stream, even with the same shard ids, says nothing of this one)."""
        item = self.client.get_item(TableName=self.table, Key={"id": {"S": function_id}},
                                    ConsistentRead=True).get("Item")
        if not item or item["stream"]["S"] != stream_arn:
            return None
        return json.loads(item["positions"]["S"])

    def save(self, function_id: str, stream_arn: str, positions: dict[str, str]) -> None:
        self.client.put_item(TableName=self.table, Item={
            "id": {"S": function_id}, "stream": {"S": stream_arn},
            "positions": {"S": json.dumps(positions)}})


def read_positions(tables: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """{stream ARN: every mapping's positions} from moto's own tables (in moto's process)."""
    found: dict[str, list[dict[str, str]]] = {}
    for name, table in tables.items():
        if not name.endswith(SUFFIX):
            continue
        for item in list(table.items.values()):
            attributes = getattr(item, "attrs", None) or {}
            if "stream" in attributes and "positions" in attributes:
                found.setdefault(attributes["stream"].value, []).append(
                    json.loads(attributes["positions"].value))
    return found
