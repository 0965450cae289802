"""Public endpoints (GreenCloud's): one item each, keyed by its id alone, because a public
call names nothing but the endpoint: "ENDPOINT#<id>" / "ENDPOINT". Its owner's list is GSI1
("OWNER#<user>#ENDPOINT" / "<created>#<id>"), its function's GSI2 ("FUNC#<function id>#ENDPOINT"
/ "<created>#<id>"), both written once with the item and never changed, so a page is a Query
and never a read of others' endpoints. Its counters (today's calls, which are also the daily
limit's count, pending, week) live beside its function's (stores/metrics.py)."""

from __future__ import annotations

from typing import Any

from taskfn.models import Record
from taskfn.stores.table import Table, time_key

ENDPOINT = "ENDPOINT"


class EndpointRecord(Record):
    id: str
    owner: str
    function_id: str
    description: str = ""
    tags: list[str] = []
    daily_limit: int = -1  # -1: no limit
    origin: list[str] = []  # normalised https origins; empty: any
    ip: list[str] = []  # IPv4 addresses; empty: any
    # {"from": "HH:MM", "to": "HH:MM", "timezone": IANA name}; None: at any time.
    time_limit: dict[str, str] | None = None
    created_at: int


def owner_partition(owner: str) -> str:
    return f"OWNER#{owner}#{ENDPOINT}"


def function_partition(function_id: str) -> str:
    return f"FUNC#{function_id}#{ENDPOINT}"


class EndpointStore:
    # What the list shows (and checks: the owner), fetched by key.
    LIST_ATTRIBUTES = ("id", "owner", "function_id", "description", "tags", "created_at")

    def __init__(self, table: Table):
        self.table = table

    def put_new(self, record: EndpointRecord) -> bool:
        created = time_key(record.created_at, record.id)
        return self.table.put_new({
            "PK": f"{ENDPOINT}#{record.id}", "SK": ENDPOINT,
            "GSI1PK": owner_partition(record.owner), "GSI1SK": created,
            "GSI2PK": function_partition(record.function_id), "GSI2SK": created,
            **record.model_dump(mode="json", exclude_none=True)})

    def get(self, endpoint_id: str) -> EndpointRecord | None:
        item = self.table.get(f"{ENDPOINT}#{endpoint_id}", ENDPOINT)
        return EndpointRecord.model_validate(item) if item else None

    def update(self, endpoint_id: str, owner: str, changes: dict[str, Any]) -> bool:
        """One conditional write of the owner's endpoint (a None value removes the field);
        False when the owner has no such endpoint."""
        ok, _ = self.table.update(
            f"{ENDPOINT}#{endpoint_id}", ENDPOINT, set_values=changes,
            condition="attribute_exists(PK) AND #o = :c_o", condition_values={"o": owner},
            condition_names={"#o": "owner"})
        return ok

    def delete(self, endpoint_id: str, owner: str) -> bool:
        return self.table.delete(f"{ENDPOINT}#{endpoint_id}", ENDPOINT, condition="#o = :o",
                                 names={"#o": "owner"}, values={":o": owner})

    def list_page(self, owner: str, *, page: int, limit: int,
                  function_id: str | None = None) -> tuple[list[EndpointRecord], int]:
        """Page `page` (from 1) of the owner's endpoints, or of one function's, newest first,
        and how many there are: the index's keys to the page and a count of the rest
        (Table.head_and_count), then one BatchGetItem of the page's endpoints."""
        if function_id is None:
            index, partition = "GSI1", owner_partition(owner)
        else:
            index, partition = "GSI2", function_partition(function_id)
        keys, total = self.table.head_and_count(index, partition, first=page * limit)
        wanted = [(key["PK"], key["SK"]) for key in keys[(page - 1) * limit:]]
        if not wanted:
            return [], total
        order = {pk: position for position, (pk, _) in enumerate(wanted)}
        items = self.table.get_many(wanted, attributes=self.LIST_ATTRIBUTES)
        items.sort(key=lambda item: order.get(f"{ENDPOINT}#{item.get('id')}", 0))
        found = [EndpointRecord.model_validate(item) for item in items]
        return [endpoint for endpoint in found if endpoint.owner == owner], total
