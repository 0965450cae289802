"""local/motospeed.py: moto's DynamoDB with its repeated work kept answers exactly what moto
answers without it (the same requests, the same parsed answers, the same errors)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler
from moto.sqs.models import Queue, SQSBackend

from taskfn.local import motospeed

ITEM = {
    "PK": {"S": "TASK#0"}, "SK": {"S": "TASK"}, "GSI1PK": {"S": "OWNER#u"},
    "GSI1SK": {"S": "0001"}, "state": {"S": "Pending"}, "n": {"N": "1.50"},
    "b": {"B": b"\x00\x01\xff"}, "t": {"BOOL": False}, "none": {"NULL": True},
    "l": {"L": [{"S": "a"}, {"B": b"\x02"}, {"M": {"x": {"S": "é ✓"}}}]},
    "m": {"M": {"inner": {"M": {"bs": {"BS": [b"a", b"\x00"]}, "ss": {"SS": ["x"]}}}}},
    "ns": {"NS": ["1", "2.5"]}, "empty": {"S": ""},
}
PATCHED = [(UpdateExpressionParser, "make"), (DepthFirstTraverser, "nodes_to_be_processed"),
           (DepthFirstTraverser, "process"), (DynamoHandler, "serialized"),
           (Table, "all_items"), (Queue, "messages"),
           (SQSBackend, "is_message_valid_based_on_retention_period")]


@pytest.fixture
def restored(monkeypatch):
    """Whatever a test installs is undone after it (moto is this process's too here)."""
    for owner, name in PATCHED:  # an inherited one is removed again at the end
        monkeypatch.setattr(owner, name, owner.__dict__.get(name, getattr(owner, name)))


def _table(client: Any) -> None:
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                   {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("PK", "SK", "GSI1PK", "GSI1SK")],
        GlobalSecondaryIndexes=[{
            "IndexName": "GSI1", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"},
                          {"AttributeName": "GSI1SK", "KeyType": "RANGE"}]}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})


def _session() -> list[tuple[str, Any]]:
    """A run of the requests the platform makes (and some it may), each answer or error as
    (what, parsed answer without its metadata, raw JSON body)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    bodies: list[Any] = []
    client.meta.events.register(
        "after-call.dynamodb.*",
        lambda http_response, **_: bodies.append(json.loads(http_response.content or b"{}")))
    _table(client)
    out: list[tuple[str, Any]] = []
    key = {"PK": {"S": "TASK#0"}, "SK": {"S": "TASK"}}

    def call(what: str, method: str, **kwargs: Any) -> None:
        try:
            answer = getattr(client, method)(TableName="t", **kwargs) if method not in (
                "batch_get_item", "transact_get_items", "transact_write_items") else getattr(
                client, method)(**kwargs)
        except ClientError as error:
            out.append((what, ("error", error.response["Error"]["Code"])))
            return
        answer.pop("ResponseMetadata", None)
        out.append((what, answer, bodies[-1] if bodies else None))

    for number in range(4):
        call(f"put {number}", "put_item", Item={**ITEM, "PK": {"S": f"TASK#{number}"},
                                                "GSI1SK": {"S": f"000{number}"}})
    call("put again, old back", "put_item", Item=ITEM, ReturnValues="ALL_OLD")
    call("put refused", "put_item", Item=ITEM, ConditionExpression="attribute_not_exists(PK)")
    call("get", "get_item", Key=key)
    call("get missing", "get_item", Key={"PK": {"S": "nope"}, "SK": {"S": "TASK"}})
    call("get projected", "get_item", Key=key, ProjectionExpression="#s, l[1], m.inner",
         ExpressionAttributeNames={"#s": "state"}, ConsistentRead=True)
    names = {"#s": "state", "#c": "cell", "#u": "updated", "#x": "counter", "#b": "b"}
    values = {":to": {"S": "Running"}, ":from": {"S": "Pending"}, ":c": {"S": "cell-1"},
              ":now": {"N": "17"}, ":one": {"N": "1"}, ":empty": {"L": []}}
    for number, returns in enumerate(["ALL_NEW", "UPDATED_NEW", "ALL_OLD", "UPDATED_OLD",
                                      "NONE"]):
        call(f"update {returns}", "update_item",
             Key={"PK": {"S": f"TASK#{number % 4}"}, "SK": {"S": "TASK"}},
             UpdateExpression="SET #s = :to, #c = :c, #u = :now, l = list_append(l, :empty) "
                              "ADD #x :one REMOVE #b",
             ConditionExpression="#s IN (:from)", ExpressionAttributeNames=names,
             ExpressionAttributeValues=values, ReturnValues=returns,
             ReturnValuesOnConditionCheckFailure="ALL_OLD")
    call("update refused", "update_item", Key=key, UpdateExpression="SET #s = :to, #c = :c",
         ConditionExpression="#s IN (:from)",
         ExpressionAttributeNames={"#s": "state", "#c": "cell"},
         ExpressionAttributeValues={":to": {"S": "Done"}, ":from": {"S": "Pending"},
                                    ":c": {"S": "x"}},
         ReturnValuesOnConditionCheckFailure="ALL_OLD")
    call("update bad expression", "update_item", Key=key, UpdateExpression="SET = :v",
         ExpressionAttributeValues={":v": {"S": "x"}})
    call("update new item", "update_item", Key={"PK": {"S": "NEW"}, "SK": {"S": "X"}},
         UpdateExpression="SET #a = if_not_exists(#a, :zero) ADD #n :one",
         ExpressionAttributeNames={"#a": "a", "#n": "n"},
         ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
         ReturnValues="ALL_NEW")
    call("query index", "query", IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
         ExpressionAttributeValues={":p": {"S": "OWNER#u"}}, ScanIndexForward=False, Limit=2)
    call("query page 2", "query", IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
         ExpressionAttributeValues={":p": {"S": "OWNER#u"}}, Limit=2,
         ExclusiveStartKey=out[-1][1].get("LastEvaluatedKey", None) or {
             "PK": {"S": "TASK#1"}, "SK": {"S": "TASK"}, "GSI1PK": {"S": "OWNER#u"},
             "GSI1SK": {"S": "0001"}})
    call("query count", "query", KeyConditionExpression="PK = :p", Select="COUNT",
         ExpressionAttributeValues={":p": {"S": "TASK#0"}})
    call("query filtered", "query", KeyConditionExpression="PK = :p",
         FilterExpression="#s = :s", ExpressionAttributeNames={"#s": "state"},
         ExpressionAttributeValues={":p": {"S": "TASK#1"}, ":s": {"S": "nothing"}})
    call("scan", "scan", Limit=3)
    call("batch get", "batch_get_item", RequestItems={"t": {"Keys": [
        key, {"PK": {"S": "TASK#2"}, "SK": {"S": "TASK"}}, {"PK": {"S": "x"}, "SK": {"S": "y"}}],
        "ProjectionExpression": "PK, b, m"}})
    call("transact get", "transact_get_items", TransactItems=[
        {"Get": {"TableName": "t", "Key": key}},
        {"Get": {"TableName": "t", "Key": {"PK": {"S": "x"}, "SK": {"S": "y"}}}}])
    call("transact write", "transact_write_items", TransactItems=[
        {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET #s = :s",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {":s": {"S": "Done"}}}}])
    call("delete", "delete_item", Key=key, ReturnValues="ALL_OLD")
    call("delete missing", "delete_item", Key=key, ReturnValues="ALL_OLD")
    return out


def _run(fast: bool) -> list[tuple[str, Any]]:
    with mock_aws():
        if fast:
            motospeed.install()
        return _session()


def test_dynamodb_answers_are_moto_s_own(restored):
    expected = _run(fast=False)
    got = _run(fast=True)
    assert getattr(DynamoHandler.serialized, "_taskfn_json", False)
    assert [what for what, *_ in got] == [what for what, *_ in expected]
    for (what, *answer), (_, *expected_answer) in zip(got, expected, strict=True):
        assert answer[0] == expected_answer[0], what  # parsed by botocore
        if len(answer) > 1:
            assert answer[1] == expected_answer[1], what  # the JSON itself
    assert any(a[1] == ("error", "ConditionalCheckFailedException") for a in got)
    assert any(a[1] == ("error", "ValidationException") for a in got)


def test_installed_once_and_expressions_parsed_once(restored):
    motospeed.install()
    serialized, make = DynamoHandler.serialized, UpdateExpressionParser.__dict__["make"]
    motospeed.install()
    assert DynamoHandler.serialized is serialized
    assert UpdateExpressionParser.__dict__["make"] is make
    first = UpdateExpressionParser.make("SET #a = :a")
    assert UpdateExpressionParser.make("SET #a = :a") is first
    with pytest.raises(Exception):  # noqa: B017 - moto's own parse error, each time
        UpdateExpressionParser.make("SET = :a")
    with pytest.raises(Exception):  # noqa: B017
        UpdateExpressionParser.make("SET = :a")


def test_tables_are_read_in_moto_s_order(restored):
    original = Table.all_items
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="n", KeySchema=[{"AttributeName": "h", "KeyType": "HASH"},
                                      {"AttributeName": "r", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"},
                                  {"AttributeName": "r", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST")
        client.create_table(
            TableName="h", KeySchema=[{"AttributeName": "h", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "B"}],
            BillingMode="PAY_PER_REQUEST")
        for number, value in enumerate(["10", "9", "-1.5", "100", "2", "0.25", "2.0e1"]):
            for hash_value in ("b", "a", "B", "é", "a b"):
                client.put_item(TableName="n", Item={"h": {"S": hash_value},
                                                     "r": {"N": value}})
            client.put_item(TableName="h", Item={"h": {"B": bytes([number * 37 % 256, 1])}})
        from moto.dynamodb.models import dynamodb_backends

        tables = dynamodb_backends["123456789012"]["us-east-1"].tables
        expected = {name: original(table) for name, table in tables.items()}
        pages = {name: client.scan(TableName=name, Limit=4) for name in tables}
        motospeed.install()
        for name, table in tables.items():
            assert Table.all_items(table) == expected[name]
            answer = client.scan(TableName=name, Limit=4)
            answer.pop("ResponseMetadata")
            pages[name].pop("ResponseMetadata")
            assert answer == pages[name]


def test_queues_give_what_moto_gives(restored):
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        motospeed.install()
        for number in range(6):
            sqs.send_message(QueueUrl=url, MessageBody=str(number),
                             DelaySeconds=900 if number == 5 else 0)
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, WaitTimeSeconds=0)
        rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies = sorted(m["Body"] for m in first["Messages"] + rest["Messages"])
        assert bodies == ["0", "1", "2", "3", "4"]  # the delayed one not yet, none twice
        assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")
        # A message past the queue's retention is not given (moto's rule, kept).
        from moto.sqs.models import sqs_backends

        backend = sqs_backends["123456789012"]["us-east-1"]
        queue = backend.get_queue("q")
        sqs.send_message(QueueUrl=url, MessageBody="old")
        old = next(m for m in queue._messages if m.body == "old")
        assert backend.is_message_valid_based_on_retention_period("q", old)
        old.sent_timestamp -= (queue.message_retention_period + 5) * 1000
        assert not backend.is_message_valid_based_on_retention_period("q", old)
        assert [m.body for m in queue.messages] == ["old"]
