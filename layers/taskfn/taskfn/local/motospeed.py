"""Work moto repeats on every DynamoDB write, done once (in moto's process).

moto is the local stack's busiest process, and a single one (one interpreter lock): every
millisecond of its CPU a task costs is a millisecond of the one core it has. Its UpdateItem,
the commonest write of a task's life, spends most of its time in two places that redo the
same work each time (figures: local/profiling.py):

- it parses the UpdateExpression twice per request (once to check the names and values
  used, once to apply it), and the stores send the same few expressions over and over;
- its AST validators rebuild their node-type map, a dict of bound methods, for every node
  of the tree they visit, ten validators a request.

Both results depend only on their inputs: the parse on the expression's text (the tree is
never changed where it is kept: moto's validators work on a deep copy, the request checks only
read it), the map on the validator's class. Here they are kept, so each request does only
the work that depends on its own values. Errors are moto's: an expression that does not
parse raises every time, and nothing is kept for it.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

PARSES_KEPT = 512  # distinct UpdateExpressions (the platform's stores send a few dozen)


def install() -> None:
    """Everything below, once per process (moto's)."""
    _keep_update_parses()
    _keep_traverser_maps()
    answer_items_as_json()
    _keep_table_order_cheap()
    _keep_queue_reads_cheap()


def _keep_update_parses() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.__dict__["make"].__func__
    if getattr(parse, "_taskfn_kept", False):
        return

    @functools.lru_cache(maxsize=PARSES_KEPT)
    def parsed(cls: type, expression: str) -> Any:
        return parse(cls, expression)

    def kept(cls: type, expression_str: Any) -> Any:
        if not isinstance(expression_str, str):
            return parse(cls, expression_str)
        # Shared, not copied (a copy costs as much as the parse): moto's callers only read
        # it, and its validators deep-copy it before they change anything.
        return parsed(cls, expression_str)

    kept._taskfn_kept = True  # type: ignore[attr-defined]
    kept.cache_info = parsed.cache_info  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(kept)  # type: ignore[method-assign, assignment]


def _keep_traverser_maps() -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    if getattr(DepthFirstTraverser.process, "_taskfn_kept", False):
        return

    def processing_map(self: Any) -> dict:
        kept = self.__dict__.get("_taskfn_map")
        if kept is None:
            kept = self.__dict__["_taskfn_map"] = self._processing_map()
        return kept

    def nodes_to_be_processed(self: Any) -> tuple:
        kept = self.__dict__.get("_taskfn_nodes")
        if kept is None:
            kept = self.__dict__["_taskfn_nodes"] = tuple(processing_map(self).keys())
        return kept

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing_map(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    process._taskfn_kept = True  # type: ignore[attr-defined]
    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed
    DepthFirstTraverser.process = process


# --- DynamoDB's item answers as JSON, without the shape walk ------------------------------

# Answers that are items (and counts, keys, capacity): moto builds each as plain JSON-ready
# data, then walks it member by member against the operation's output shape, in Python: as
# much CPU again as the action itself for an item of a few dozen attributes. The walk adds
# nothing to such data but base64 for binary values and the omission of empty members and of
# members the answer does not have (DeleteItem's ConsumedCapacityUnits); here json.dumps does
# the same. Errors, and every other action, go through moto's serializer.
ITEM_ACTIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
                          "BatchGetItem", "TransactGetItems"})
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"


def _plain(value: Any) -> Any:
    """`value` as moto's JSON serializer writes it: binary as base64, no null members."""
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list | tuple):
        return [_plain(inner) for inner in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value


@functools.cache
def _output_members(action: str) -> frozenset[str]:
    """The members of an action's answer (moto leaves out any other, and so does this)."""
    from moto.core.responses import get_service_model

    shape = get_service_model("dynamodb").operation_model(action).output_shape
    return frozenset(shape.members) if shape is not None else frozenset()


def answer_items_as_json() -> None:
    """DynamoDB's item actions answered by json.dumps, once per process."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.serialized
    if getattr(original, "_taskfn_json", False):
        return

    def serialized(self: Any, action_result: Any) -> Any:
        result = getattr(action_result, "result", None)
        if (type(action_result).__name__ not in ("DynamoResult", "ActionResult")
                or not isinstance(result, dict) or self._get_action() not in ITEM_ACTIONS):
            return original(self, action_result)
        members = _output_members(self._get_action())
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        headers.update(self.response_headers)
        return 200, headers, json.dumps(
            _plain({key: value for key, value in result.items() if key in members}))

    serialized._taskfn_json = True  # type: ignore[attr-defined]
    DynamoHandler.serialized = serialized


# --- reads that walk everything: once per read, not once per item ------------------------


def _keep_table_order_cheap() -> None:
    """moto's Query and Scan start from every item of the table in key order, sorted anew
    each time by comparing its DynamoType wrappers: a Python method call, and a Decimal or a
    set built, per comparison. Sorted here by the same values themselves (each key attribute
    has one type, as the table's schema says), so the order is the same."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.all_items, "_taskfn_kept", False):
        return

    def all_items(self: Any) -> list:
        items: list = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        return sorted(items, key=_key_order)

    all_items._taskfn_kept = True  # type: ignore[attr-defined]
    Table.all_items = all_items


def _key_order(item: Any) -> Any:
    """What moto sorts by, (hash, range) or hash, as the values its wrappers compare."""
    if item.range_key:
        return (item.hash_key.cast_value, item.range_key.cast_value)
    return item.hash_key.cast_value


def _keep_queue_reads_cheap() -> None:
    """moto's ReceiveMessage lists a queue's visible messages by asking each message the time
    twice, and checks each message it returns against the queue's retention by building all
    of the queue's attributes three times (each counting every message): with a backlog of a
    thousand tasks, a receive cost moto 15 ms. Here the list is made at one moment, and the
    retention is read from the queue itself (the attribute is that value)."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.is_message_valid_based_on_retention_period, "_taskfn_kept", False):
        return

    def messages(self: Any) -> list:
        now = unix_time_millis()
        return [message for message in self._messages
                if now > message.visible_at and not now < message.delayed_until]

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    retained._taskfn_kept = True  # type: ignore[attr-defined]
    Queue.messages = property(messages)  # type: ignore[method-assign, assignment]
    SQSBackend.is_message_valid_based_on_retention_period = retained
