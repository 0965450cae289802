"""Live logs of fastlane executions (docs/design/jobs-api.md §6): WebSocket tickets and
connections, and per execution the pump's lease, its head in the log stream, and the output
copied from it as a dense sequence of chunks.

  "FLWS#<sha256(ticket)>" / "TICKET"     a stream page's ticket: owner and what it may follow
  "FLWSC#<connection id>" / "CONN"       a connection, by id ($disconnect has nothing else)
  "FLX#<execution id>" / "PUMP"          the pump's lease, next_seq and the log stream token
  "FLX#<execution id>" / "C#<seq:010d>"  chunk `seq` of the execution's output (from 0)
  "FLX#<execution id>" / "K#<connection id>"  a connection following the execution: how far
                                         it has been sent (sent_seq) and how (mode)

Chunks and the head move together in one transaction, conditional on the lease and on the
head as it was read: whoever copies holds the lease, and a crash between two copies leaves
the sequence and the token consistent, so nothing is copied twice or skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskfn.models import Record
from taskfn.stores.table import Table, is_conditional_failure, to_item

TICKET_SK, CONNECTION_SK, PUMP_SK = "TICKET", "CONN", "PUMP"
CHUNK, LISTENER = "C#", "K#"
TRANSACTION_MAX = 100  # DynamoDB's items per TransactWriteItems


def ticket_partition(ticket: str) -> str:
    return f"FLWS#{hashlib.sha256(ticket.encode()).hexdigest()}"


def connection_partition(connection_id: str) -> str:
    return f"FLWSC#{connection_id}"


def execution_partition(execution_id: str) -> str:
    return f"FLX#{execution_id}"


def chunk_key(seq: int) -> str:
    return f"{CHUNK}{seq:010d}"


class Ticket(Record):
    """What a stream page may follow without a token: one job's (last) execution, or one
    execution, of one owner, until `expires_at` (epoch seconds)."""

    owner: str
    task_id: str
    job_id: str
    execution_id: str = ""
    expires_at: int


class Connection(Record):
    """A WebSocket connection following one execution (execution_id "" when there was none
    to follow: it is only closed). `mode` is "" until the pump decides, "stream" once it
    streams the chunks; `sent_seq` is the next chunk to send it."""

    connection_id: str
    owner: str
    task_id: str = ""
    job_id: str = ""
    execution_id: str = ""
    task_guid: str = ""
    protocol: str = ""
    created_at: int  # ns
    expires_at: int  # epoch s (TTL)
    sent_seq: int = 0
    mode: str = ""


@dataclass(frozen=True)
class Head:
    """Where the copy stands: the next chunk's seq and the log stream's forward token."""

    next_seq: int = 0
    token: str = ""


class LeaseLost(Exception):
    """The pump no longer holds the lease (it expired and another pump took it)."""


class LiveLogStore:
    def __init__(self, table: Table):
        self.table = table

    # --- tickets -------------------------------------------------------------------------

    def put_ticket(self, ticket: str, record: Ticket) -> None:
        self.table.put({"PK": ticket_partition(ticket), "SK": TICKET_SK,
                        **record.model_dump(mode="json")})

    def ticket(self, ticket: str) -> Ticket | None:
        item = self.table.get(ticket_partition(ticket), TICKET_SK, consistent=True)
        return Ticket.model_validate(item) if item else None

    # --- connections ---------------------------------------------------------------------

    def add_connection(self, connection: Connection) -> None:
        """The connection by id, and (following an execution) under the execution too."""
        values = connection.model_dump(mode="json")
        items = [{"Put": {"TableName": self.table.name, "Item": to_item({
            "PK": connection_partition(connection.connection_id), "SK": CONNECTION_SK,
            **values})}}]
        if connection.execution_id:
            items.append({"Put": {"TableName": self.table.name, "Item": to_item({
                "PK": execution_partition(connection.execution_id),
                "SK": LISTENER + connection.connection_id, **values})}})
        self.table.client.transact_write_items(TransactItems=items)

    def connection_by_id(self, connection_id: str) -> Connection | None:
        item = self.table.get(connection_partition(connection_id), CONNECTION_SK)
        return Connection.model_validate(item) if item else None

    def listener(self, execution_id: str, connection_id: str) -> Connection | None:
        item = self.table.get(execution_partition(execution_id), LISTENER + connection_id,
                              consistent=True)
        return Connection.model_validate(item) if item else None

    def listeners(self, execution_id: str) -> list[Connection]:
        """Every connection following the execution (one Query per 1000)."""
        found: list[Connection] = []
        start: dict[str, Any] | None = None
        while True:
            items, start = self.table.query_items(execution_partition(execution_id),
                                                  prefix=LISTENER, limit=1000, start=start)
            found += [Connection.model_validate(item) for item in items]
            if start is None:
                return found

    def remove_connection(self, connection_id: str, execution_id: str) -> None:
        if execution_id:
            self.table.remove(execution_partition(execution_id), LISTENER + connection_id)
        self.table.remove(connection_partition(connection_id), CONNECTION_SK)

    def mark(self, connection: Connection, *, sent_seq: int, mode: str) -> bool:
        """The connection sent up to `sent_seq` (and in `mode`), if it is still there and
        as it was read; False when it is gone (disconnected) or moved meanwhile."""
        ok, _ = self.table.update(
            execution_partition(connection.execution_id), LISTENER + connection.connection_id,
            set_values={"sent_seq": sent_seq, "mode": mode},
            condition="attribute_exists(PK) AND #s = :c_s",
            condition_names={"#s": "sent_seq"}, condition_values={"s": connection.sent_seq})
        return ok

    # --- the pump ------------------------------------------------------------------------

    def take_lease(self, execution_id: str, owner: str, now_ms: int, lease_ms: int,
                   expires_at: int) -> bool:
        """The pump's lease on the execution, if nobody holds it (or it ran out); the head
        starts at 0 the first time."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=to_item({"PK": execution_partition(execution_id), "SK": PUMP_SK}),
                UpdateExpression="SET #o = :me, #u = :until, #e = :expires, "
                                 "#n = if_not_exists(#n, :zero), #t = if_not_exists(#t, :none)",
                ConditionExpression="attribute_not_exists(PK) OR #u < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "lease_owner", "#u": "lease_until",
                                          "#e": "expires_at", "#n": "next_seq",
                                          "#t": "cw_token"},
                ExpressionAttributeValues=to_item({
                    ":me": owner, ":until": now_ms + lease_ms, ":expires": expires_at,
                    ":zero": 0, ":none": "", ":now": now_ms}))
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def renew_lease(self, execution_id: str, owner: str, until_ms: int) -> None:
        ok, _ = self.table.update(
            execution_partition(execution_id), PUMP_SK, set_values={"lease_until": until_ms},
            condition="#o = :c_me", condition_names={"#o": "lease_owner"},
            condition_values={"me": owner})
        if not ok:
            raise LeaseLost(execution_id)

    def release_lease(self, execution_id: str, owner: str) -> None:
        self.table.update(
            execution_partition(execution_id), PUMP_SK, set_values={"lease_until": 0},
            condition="#o = :c_me", condition_names={"#o": "lease_owner"},
            condition_values={"me": owner})

    def lease(self, execution_id: str) -> tuple[str, int]:
        """(lease owner, lease until in ms); ("", 0) when never taken."""
        item = self.table.get(execution_partition(execution_id), PUMP_SK, consistent=True) or {}
        return str(item.get("lease_owner", "")), int(item.get("lease_until", 0))

    def head(self, execution_id: str) -> Head:
        item = self.table.get(execution_partition(execution_id), PUMP_SK, consistent=True) or {}
        return Head(int(item.get("next_seq", 0)), str(item.get("cw_token", "")))

    def append(self, execution_id: str, owner: str, head: Head, texts: list[str],
               token: str, expires_at: int) -> Head:
        """Chunks `texts` after `head` and the new token, in one transaction per at most 99
        chunks, each conditional on the lease and on the head as it was: LeaseLost when
        another pump holds it now."""
        for start in range(0, max(1, len(texts)), TRANSACTION_MAX - 1):
            part = texts[start:start + TRANSACTION_MAX - 1]
            last = start + len(part) >= len(texts)
            following = Head(head.next_seq + len(part), token if last else head.token)
            items: list[dict[str, Any]] = [{"Put": {
                "TableName": self.table.name, "Item": to_item({
                    "PK": execution_partition(execution_id), "SK": chunk_key(head.next_seq + n),
                    "text": text, "expires_at": expires_at}),
                "ConditionExpression": "attribute_not_exists(PK)"}}
                for n, text in enumerate(part)]
            items.append({"Update": {
                "TableName": self.table.name,
                "Key": to_item({"PK": execution_partition(execution_id), "SK": PUMP_SK}),
                "UpdateExpression": "SET #n = :next, #t = :token",
                "ConditionExpression": "#o = :me AND #n = :seq",
                "ExpressionAttributeNames": {"#n": "next_seq", "#t": "cw_token",
                                             "#o": "lease_owner"},
                "ExpressionAttributeValues": to_item({
                    ":next": following.next_seq, ":token": following.token, ":me": owner,
                    ":seq": head.next_seq})}})
            try:
                self.table.client.transact_write_items(TransactItems=items)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                    raise LeaseLost(execution_id) from error
                raise
            head = following
        return head

    def chunks(self, execution_id: str, first: int, end: int) -> list[tuple[int, str]]:
        """Chunks first … end-1, in order (consistent Queries of that key range)."""
        found: list[tuple[int, str]] = []
        arguments: dict[str, Any] = {
            "TableName": self.table.name, "ConsistentRead": True,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": to_item({
                ":pk": execution_partition(execution_id), ":lo": chunk_key(first),
                ":hi": chunk_key(end - 1)})}
        while first < end:
            answer = self.table.client.query(**arguments)
            for item in answer.get("Items", []):
                found.append((int(item["SK"]["S"][len(CHUNK):]), item["text"]["S"]))
            last = answer.get("LastEvaluatedKey")
            if not last:
                break
            arguments["ExclusiveStartKey"] = last
        return found
