"""DynamoDB write units from the table's stream, by DynamoDB's billing rules.

moto reports no real consumed capacity, so the cost figure counts the write units of the
writes a workload actually made: every stream record (NEW_AND_OLD_IMAGES) is one write that
changed an item, billed as the larger of its two images in 1 KB units, plus one write per
global secondary index entry it adds, changes or removes (two when the entry's key moves),
an entry counted only when the write changes an attribute the index holds (its keys, the
table's keys, its projection). Not seen here, so not counted: writes that changed nothing (a
refused condition, or an update to the same values: a unit each, no stream record), and the
doubling of transactional writes (a stream record does not say it came from one; the paths
measured use none). TTL deletes are free (their stream records carry userIdentity
dynamodb.amazonaws.com) and are left out.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from taskfn.local.template import load_yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
KB = 1024
TABLE_KEYS = ("PK", "SK")


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str                 # ALL, KEYS_ONLY or INCLUDE
    attributes: frozenset[str] = frozenset()

    def entry(self, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The index's entry for `item`, or None when the item is not in it (sparse)."""
        if not item or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        wanted = set(self.keys) | set(TABLE_KEYS) | set(self.attributes)
        return {name: value for name, value in item.items() if name in wanted}


def table_indexes() -> list[Index]:
    """The table's global secondary indexes, as template.yaml declares them."""
    template = load_yaml(TEMPLATE.read_text())
    table = template["Resources"]["Table"]["Properties"]
    indexes = []
    for index in table.get("GlobalSecondaryIndexes", []):
        projection = index.get("Projection", {})
        indexes.append(Index(
            name=index["IndexName"],
            keys=tuple(key["AttributeName"] for key in index["KeySchema"]),
            projection=projection.get("ProjectionType", "ALL"),
            attributes=frozenset(projection.get("NonKeyAttributes", [])),
        ))
    return indexes


def value_bytes(value: Mapping[str, Any]) -> int:
    """DynamoDB's size of one attribute value in its wire form ({"S": ...}, {"N": ...}...)."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        # Significant digits only: "100", "1.50" and "1E+2" are all one digit, two bytes.
        digits = Decimal(data).normalize().as_tuple().digits
        return math.ceil(max(1, len(digits)) / 2) + 1
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_bytes({kind[0]: element}) for element in data)
    if kind == "L":
        return 3 + sum(1 + value_bytes(element) for element in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + value_bytes(element)
                       for name, element in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_bytes(item: Mapping[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_bytes(value) for name, value in (item or {}).items())


def units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def record_units(record: Mapping[str, Any], indexes: Iterable[Index]) -> dict[str, int]:
    """Write units of one stream record: {"table": n, "<index>": n, ...}."""
    change = record.get("dynamodb") or {}
    old, new = change.get("OldImage"), change.get("NewImage")
    found = {"table": units(max(item_bytes(old), item_bytes(new)))}
    for index in indexes:
        before, after = index.entry(old), index.entry(new)
        if before == after:
            continue
        moved = (before is not None and after is not None
                 and any(before[key] != after[key] for key in index.keys))
        size = max(item_bytes(before), item_bytes(after))
        found[index.name] = units(size) * (2 if moved else 1)
    return found


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return identity.get("principalId") == "dynamodb.amazonaws.com"


def summed(records: Iterable[Mapping[str, Any]], indexes: list[Index] | None = None
           ) -> dict[str, int]:
    """Write units of many stream records, by where they went ("table", each index)."""
    indexes = table_indexes() if indexes is None else indexes
    total: dict[str, int] = {}
    for record in records:
        if is_ttl_delete(record):
            continue
        for where, count in record_units(record, indexes).items():
            total[where] = total.get(where, 0) + count
    return total
