"""The single DynamoDB table: key layout, (de)serialisation, conditional writes, paging.

Key design (see template.yaml for the indexes):
  PK / SK          the item itself: "TASK#<id>" / "TASK", "FUNC#<id>" / "FUNC", ...
                   Beside a function: "FUNC#<id>" / "TAG#<tag id>", its membership in a tag
                   (on GSI2, below). An owner's tags, in one partition of their own read
                   strongly consistent: "OWNER#<user>#TAG" / "TAG#<id>", and their count
                   (the cap) "OWNER#<user>#TAG" / "COUNT" (stores/tags.py)
                   An owner's schedules, likewise: "OWNER#<user>#SCHED" / "SCHED#<id>", with
                   their run input inside (stores/schedules.py; on GSI2 by function)
                   A public endpoint: "ENDPOINT#<id>" / "ENDPOINT" (stores/endpoints.py), its
                   counters beside its function's: "FUNC#<function id>" /
                   "METRICS#ENDPOINT#<id>" (today's count is also the daily limit's)
                   A trigger, in its owner's partition: "OWNER#<user>#TRIGGER" /
                   "TRIGGER#<id>" (stores/triggers.py; on GSI4 by its function, below);
                   a trigger chain's budget beside its first task: "TASK#<id>" / "CHAIN"
                   A node (a cell): "NODE#<hash>" / "NODE" (stores/nodes.py; on GSI1 by its
                   owner). An owner's builds in progress: "OWNER#<user>#METRICS" / "BUILDS"
                   fastlane's groups, counts, search words and jobs, each under its owner:
                   "FL#<user>#TASKS" / "T#<task id>" | "COUNT", "FL#<user>#W#<word>" /
                   "T#<task id>", "FL#<user>#T#<task id>" / "J#<job id>" (stores/jobs.py),
                   with their executions, running containers and hooks' hourly budgets
                   Coder's agent tasks (stores/agenttasks.py): a task's name, unique per
                   owner whatever its case, "CODER#<user>" / "NAME#<lower-cased name>"
                   (holds the task's id; on GSI1, below), and presets "CODER#<user>" /
                   "PRESET#<id>"; the task itself is a "TASK#<uuid>" / "TASK" record
  GSI1PK / GSI1SK  what an owner has, newest first: "OWNER#<user>#TASK" / "<created>#<id>"
                   (and "OWNER#<user>#ENDPOINT": their public endpoints;
                   "OWNER#<user>#CODER" / "<created>#<task id>": their agent tasks' name
                   items, written with the task and removed with it;
                   "OWNER#<user>#NODE" / "<created>#<hash>": their nodes;
                   "OWNER#<user>#METRICS" / "<function id>": their functions' counters,
                   the "FUNC#<id>" / "METRICS" items, for the platform metrics)
                   (projects only what list views show, so a start writes no index entry)
  GSI2PK / GSI2SK  children of a parent by time (keys only): "FUNC#<id>#BUILD" /
                   "<created>#<id>" (a function's builds), "FUNC#<id>#TASK" / "<created>#<id>"
                   (a function's tasks: the CSV export by date, the task list by function),
                   "FUNC#<id>#ENDPOINT" / "<created>#<id>" (a function's public endpoints).
                   "FUNC#<id>#SCHED" / "<created>#<id>" (a function's schedules).
                   A task's entry is written with it and never changes: one index write
                   And "TAG#<tag id>#FUNC" / "<function created>#<function id>": the
                   functions that carry a tag (its membership items), the list by tag
  GSI3PK / GSI3SK  tasks convergence still has work for, by age, sparse (keys):
                   "OPEN#<n>" / "<created>#<id>", n = crc32(id) mod OPEN_SHARDS, so no one
                   partition takes every open task's writes; the converger merges the shards.
                   Set at create, removed at completion, except for tasks with a completion
                   callback or desired through the Cell API: they keep it until deleted
  GSI4PK / GSI4SK  Cell API tasks by domain, sparse (all attributes: BBS's list shows whole
                   tasks): "DOMAIN#<domain>" / "PENDING#<since>#<id>" while Pending, "TAKEN"
                   once started or finished. Pending work is one key range at the head of
                   its domain, however many finished tasks the domain holds (until
                   convergence deletes them after the completed expiry)
                   And "FUNC#<function id>#TRIGGER" / "TRIGGER#<id>": the triggers on a
                   function's tasks, read whole by the firing path in one Query

Index writes are DynamoDB's hidden cost: every index entry a write adds, changes or removes is
billed like a write of its own (an entry whose key changes: two), so the keys and projections
above are chosen so that a task's life costs as few index writes as possible. A GreenCloud
task: 5 (put: owner list, function list and open index; completion: owner list and open index;
a start none). Its function's counters are one write at its create and a share of one per
executor batch at its completion (stores/metrics.py): 8.25 write units in all (bench/cost.py
counts them from the stream).
A Cell API task without a callback, run by a cell that heartbeats N times: 10 + N (put 3;
start 2, as its domain key leaves the Pending range; each heartbeat 1; completion 2, the open
index kept; convergence's delete 3), where it was 7 + N before it was deleted as BBS deletes it.
See bench/ for the figures.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from taskfn.errors import InvalidRequest

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_plain(v)) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _native(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Floats are not allowed by the serializer; DynamoDB numbers are decimals."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _native(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_native(v) for v in value]
    if isinstance(value, set):
        return sorted(_native(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


TASK_SK = "TASK"


def task_key(task_id: str) -> tuple[str, str]:
    """A task record's (PK, SK): the one spelling of it, for every store that writes one."""
    return f"TASK#{task_id}", TASK_SK


def time_key(created_ns: int, item_id: str) -> str:
    """A sort key that orders by time, then id; fixed width so strings sort like numbers."""
    return f"{created_ns:020d}#{item_id}"


def is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def old_item(error: ClientError) -> dict[str, Any] | None:
    """The item as it was when a condition failed (ReturnValuesOnConditionCheckFailure)."""
    item = error.response.get("Item")
    return from_item(item) if item else None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursor: str | None


@dataclass(frozen=True)
class Filter:
    """A FilterExpression with the attribute names ("#…") and values (":…", plain) it uses;
    they must not be the key condition's own (#pk, #sk, :pk, :lo, :hi, :prefix)."""

    expression: str
    names: Mapping[str, str]
    values: Mapping[str, Any]


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    raw = json.dumps(from_item(key), separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The opaque cursor back into a key (plain values); anything malformed is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, dict) or not all(isinstance(v, str) for v in key.values()):
            raise ValueError("not a key")
        return key
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidRequest("invalid cursor") from error


class Table:
    """Thin access to the one table; stores above it know their own item shapes."""

    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        answer = self.client.get_item(
            TableName=self.name,
            Key=to_item({"PK": pk, "SK": sk}),
            ConsistentRead=consistent,
        )
        item = answer.get("Item")
        return from_item(item) if item else None

    def get_many(
        self, keys: list[tuple[str, str]], *, attributes: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """BatchGetItem in chunks of 100, retrying unprocessed keys; items in no order, the
        missing ones left out. `attributes` limits what travels back (not what is billed)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {}
        if attributes:
            names = {f"#p{i}": name for i, name in enumerate(attributes)}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        for start in range(0, len(keys), 100):
            chunk = [to_item({"PK": pk, "SK": sk}) for pk, sk in keys[start : start + 100]]
            pending: dict[str, Any] = {self.name: {**request, "Keys": chunk}}
            for attempt in range(8):
                answer = self.client.batch_get_item(RequestItems=pending)
                items.extend(from_item(i) for i in answer.get("Responses", {}).get(self.name, []))
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("BatchGetItem left keys unprocessed after retries")
        return items

    def put_new(self, values: Mapping[str, Any]) -> bool:
        """Write an item that must not exist yet; False when it does."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def put_if(
        self, values: Mapping[str, Any], *, condition: str, condition_values: Mapping[str, Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """A conditional put: (True, None), or (False, the item as it was)."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=to_item(values),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_item(condition_values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False, old_item(error)
            raise
        return True, None

    def put(self, values: Mapping[str, Any]) -> None:
        self.client.put_item(TableName=self.name, Item=to_item(values))

    def update(
        self,
        pk: str,
        sk: str,
        *,
        set_values: Mapping[str, Any],
        remove: tuple[str, ...] = (),
        add_values: Mapping[str, int] | None = None,
        append_values: Mapping[str, list[Any]] | None = None,
        condition: str | None,
        condition_values: Mapping[str, Any] | None = None,
        condition_names: Mapping[str, str] | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """One conditional update (unconditional with `condition` None, for counters). (True,
        new item) or (False, the item as it was).
        `add_values` are atomic increments (ADD), for counters whose value the writer does
        not know; `append_values` are added at the end of lists (created when missing)."""
        names = dict(condition_names or {})
        values = {f":c_{k}": v for k, v in (condition_values or {}).items()}
        sets = []
        for index, (attribute, value) in enumerate(set_values.items()):
            names[f"#u{index}"] = attribute
            if value is None:
                remove = (*remove, attribute)
                del names[f"#u{index}"]
                continue
            values[f":u{index}"] = value
            sets.append(f"#u{index} = :u{index}")
        for index, (attribute, items) in enumerate((append_values or {}).items()):
            names[f"#l{index}"] = attribute
            values[f":l{index}"] = list(items)
            values[":empty_list"] = []
            existing = f"if_not_exists(#l{index}, :empty_list)"
            sets.append(f"#l{index} = list_append({existing}, :l{index})")
        expression = ("SET " + ", ".join(sets)) if sets else ""
        if remove:
            removes = []
            for index, attribute in enumerate(remove):
                names[f"#r{index}"] = attribute
                removes.append(f"#r{index}")
            expression += " REMOVE " + ", ".join(removes)
        adds = []
        for index, (attribute, amount) in enumerate((add_values or {}).items()):
            names[f"#a{index}"] = attribute
            values[f":a{index}"] = amount
            adds.append(f"#a{index} :a{index}")
        if adds:
            expression += " ADD " + ", ".join(adds)
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "Key": to_item({"PK": pk, "SK": sk}),
            "UpdateExpression": expression.strip(),
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if condition:
            arguments["ConditionExpression"] = condition
        if values:
            arguments["ExpressionAttributeValues"] = to_item(values)
        try:
            answer = self.client.update_item(**arguments)
        except ClientError as error:
            if is_conditional_failure(error):
                return False, old_item(error)
            raise
        return True, from_item(answer["Attributes"])

    def remove(self, pk: str, sk: str) -> None:
        """Delete an item whatever it holds (what only its parent's owner reaches)."""
        self.client.delete_item(TableName=self.name, Key=to_item({"PK": pk, "SK": sk}))

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
    ) -> bool:
        """Conditional delete; False when the condition (e.g. ownership) does not hold."""
        return self.delete_checked(pk, sk, condition=condition, names=names, values=values)[0]

    def delete_checked(
        self,
        pk: str,
        sk: str,
        *,
        condition: str,
        names: Mapping[str, str],
        values: Mapping[str, Any],
    ) -> tuple[bool, dict[str, Any] | None]:
        """Conditional delete: (True, None), or (False, the item as it was) so the caller can
        say why without another read."""
        try:
            self.client.delete_item(
                TableName=self.name,
                Key=to_item({"PK": pk, "SK": sk}),
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues=to_item(values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_conditional_failure(error):
                return False, old_item(error)
            raise
        return True, None

    def query(
        self,
        index: str,
        partition: str,
        *,
        limit: int,
        cursor: str | None = None,
        newest_first: bool = True,
        between: tuple[str, str] | None = None,
        prefix: str | None = None,
        where: Filter | None = None,
    ) -> Page:
        """One Query call: one page of an index partition (or of its sort keys that start
        with `prefix`, or lie `between` two), with an opaque cursor. `where` filters what the
        page read (a FilterExpression): `limit` counts the entries read, not those kept, so a
        filtered page may hold fewer, even none, with a cursor to go on."""
        pk, sk = f"{index}PK", f"{index}SK"
        condition = "#pk = :pk"
        names = {"#pk": pk}
        values: dict[str, Any] = {":pk": partition}
        if between:
            condition += " AND #sk BETWEEN :lo AND :hi"
            names["#sk"] = sk
            values[":lo"], values[":hi"] = between
        elif prefix:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"] = sk
            values[":prefix"] = prefix
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }
        if where is not None:
            if names.keys() & where.names.keys() or values.keys() & where.values.keys():
                raise ValueError(f"filter placeholders clash with the key condition's: {where}")
            arguments["FilterExpression"] = where.expression
            names.update(where.names)
            values.update(where.values)
        arguments["ExpressionAttributeNames"] = names
        arguments["ExpressionAttributeValues"] = to_item(values)
        start = decode_cursor(cursor)
        if start:
            # A cursor only continues the listing it came from: never another partition.
            if start.get(pk) != partition or start.keys() != {"PK", "SK", pk, sk}:
                raise InvalidRequest("invalid cursor")
            if prefix and not start[sk].startswith(prefix):
                raise InvalidRequest("invalid cursor")
            if between and not between[0] <= start[sk] <= between[1]:
                # DynamoDB refuses a start outside the key condition (a ValidationException).
                # Past the range's end in the reading direction is a listing that has ended,
                # e.g. a cursor whose entry has since fallen behind a retention cut.
                if (start[sk] < between[0]) == newest_first:
                    return Page([], None)
                raise InvalidRequest("invalid cursor")
            arguments["ExclusiveStartKey"] = to_item(start)
        answer = self.client.query(**arguments)
        items = [from_item(item) for item in answer.get("Items", [])]
        return Page(items, encode_cursor(answer.get("LastEvaluatedKey")))

    def head_and_count(
        self, index: str, partition: str, *, first: int
    ) -> tuple[list[dict[str, str]], int]:
        """The table keys (PK, SK) of the first `first` entries of an index partition, newest
        first, and how many entries the partition holds, for paged lists that say their total
        (GreenCloud's totalCount). Each entry is read once: as a key while the head lasts,
        then only counted (Select=COUNT), a Query per MB of index entries; a partition that
        ends within the head takes one Query for both."""
        if first < 1:
            raise ValueError("first: at least one entry")
        names = {"#pk": f"{index}PK"}
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": partition}),
            "ScanIndexForward": False,
        }
        keys: list[dict[str, str]] = []
        last: dict[str, Any] | None = None
        while len(keys) < first:
            answer = self.client.query(
                **arguments, Limit=first - len(keys), ProjectionExpression="#k0, #k1",
                ExpressionAttributeNames={**names, "#k0": "PK", "#k1": "SK"},
                **({"ExclusiveStartKey": last} if last else {}))
            keys += [{"PK": i["PK"]["S"], "SK": i["SK"]["S"]} for i in answer.get("Items", [])]
            last = answer.get("LastEvaluatedKey")
            if not last:
                return keys, len(keys)
        total = len(keys)
        while last:
            answer = self.client.query(**arguments, Select="COUNT", ExclusiveStartKey=last,
                                       ExpressionAttributeNames=names)
            total += answer.get("Count", 0)
            last = answer.get("LastEvaluatedKey")
        return keys, total

    def query_items(
        self, pk: str, *, prefix: str, limit: int, start: Mapping[str, Any] | None = None,
        newest_first: bool = False, attributes: tuple[str, ...] = (),
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One strongly consistent Query of the table itself: the items of partition `pk`
        whose sort keys start with `prefix` (in descending order when `newest_first`; only
        `attributes` of them, when given), and the key to go on from (None at the end).
        For what must see every write made before it, which an index may not yet show."""
        names = {"#pk": "PK", "#sk": "SK"}
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item({":pk": pk, ":prefix": prefix}),
            "ConsistentRead": True,
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if attributes:
            projected = {f"#p{i}": name for i, name in enumerate(("PK", "SK", *attributes))}
            names.update(projected)
            arguments["ProjectionExpression"] = ", ".join(projected)
        if start:
            arguments["ExclusiveStartKey"] = to_item(start)
        answer = self.client.query(**arguments)
        last = answer.get("LastEvaluatedKey")
        return [from_item(i) for i in answer.get("Items", [])], from_item(last) if last else None

    def query_all(
        self,
        index: str,
        partition: str,
        *,
        bound: int,
        equals: Mapping[str, Any] | None = None,
        prefix: str | None = None,
        below: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every page of an index partition (or of its sort keys that start with `prefix`, or
        sort before `below`), oldest first, for lists that have no paging (BBS's): items whose
        attributes equal `equals` (a FilterExpression, AND-ed), at most `bound` of them.
        Returns the items and whether more may exist beyond the bound."""
        names = {"#pk": f"{index}PK"}
        values: dict[str, Any] = {":pk": partition}
        condition = "#pk = :pk"
        if prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"], values[":prefix"] = f"{index}SK", prefix
        elif below is not None:
            condition += " AND #sk < :below"
            names["#sk"], values[":below"] = f"{index}SK", below
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": index,
            "KeyConditionExpression": condition,
        }
        filters = []
        for position, (attribute, value) in enumerate((equals or {}).items()):
            names[f"#f{position}"] = attribute
            values[f":f{position}"] = value
            filters.append(f"#f{position} = :f{position}")
        if filters:
            arguments["FilterExpression"] = " AND ".join(filters)
        arguments["ExpressionAttributeNames"] = names
        arguments["ExpressionAttributeValues"] = to_item(values)
        items: list[dict[str, Any]] = []
        while True:
            answer = self.client.query(**arguments)
            items.extend(from_item(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if len(items) > bound or (len(items) == bound and last):
                return items[:bound], True
            if not last:
                return items, False
            arguments["ExclusiveStartKey"] = last

    def query_merged(
        self, index: str, partitions: Sequence[str], *, bound: int, page: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The first `bound` items of several partitions of an index taken together, oldest
        first by sort key across all of them (a merge), and whether more exist. Each partition
        is read lazily, a page at a time, so about `bound` items are read in all, not `bound`
        per partition; a page is sized for an even share of the bound unless given."""
        sk = f"{index}SK"
        if page is None:
            page = max(100, math.ceil(1.25 * bound / max(1, len(partitions))) + 1)
        streams = [self._ascending(index, partition, page) for partition in partitions]
        merged = heapq.merge(*streams, key=lambda item: (item.get(sk, ""), item.get("PK", "")))
        items = list(itertools.islice(merged, bound + 1))
        return items[:bound], len(items) > bound

    def _ascending(self, index: str, partition: str, page: int) -> Iterator[dict[str, Any]]:
        """An index partition's items in sort key order, one Query per page as needed."""
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": f"{index}PK"},
            "ExpressionAttributeValues": to_item({":pk": partition}),
            "ScanIndexForward": True,
            "Limit": page,
        }
        while True:
            answer = self.client.query(**arguments)
            yield from (from_item(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last
