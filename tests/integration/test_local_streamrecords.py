"""local/streamrecords.py: GetRecords answered from kept JSON is what moto's own serializer
answers, record for record, page for page."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

from taskfn.local import streamrecords

ITEM = {
    "PK": {"S": "TASK#1"}, "SK": {"S": "TASK"},
    "n": {"N": "1.50"}, "big": {"N": "123456789012345678901234567890"},
    "b": {"B": b"\x00\x01\xff"}, "t": {"BOOL": True}, "none": {"NULL": True},
    "l": {"L": [{"S": "a"}, {"N": "2"}, {"B": b"\x02"}, {"M": {"x": {"S": "é ✓ \u2028"}}}]},
    "m": {"M": {"inner": {"M": {"b": {"B": b"\x03"}, "ss": {"SS": ["x", "y"]}}}}},
    "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"a", b"\x00"]}, "ss": {"SS": ["q"]},
    "quote": {"S": 'a "quoted" \\ line\nbreak'},
}


@pytest.fixture
def stream(monkeypatch):
    # moto is this process's too here: what a test installs is undone after it.
    monkeypatch.setattr(DynamoDBStreamsHandler, "get_records",
                        DynamoDBStreamsHandler.__dict__["get_records"])
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                  {"AttributeName": "SK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
        for number in range(3):
            dynamodb.put_item(TableName="t", Item={**ITEM, "PK": {"S": f"TASK#{number}"}})
        dynamodb.update_item(TableName="t", Key={"PK": {"S": "TASK#0"}, "SK": {"S": "TASK"}},
                             UpdateExpression="SET n = :n REMOVE b",
                             ExpressionAttributeValues={":n": {"N": "2"}})
        dynamodb.delete_item(TableName="t", Key={"PK": {"S": "TASK#1"}, "SK": {"S": "TASK"}})
        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        yield streams, arn


def _pages(streams, arn: str, limit: int) -> list[list[dict]]:
    """Every page from the start, and one more (empty) after the end."""
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    pages = []
    for _ in range(10):
        answer = streams.get_records(ShardIterator=iterator, Limit=limit)
        pages.append(answer["Records"])
        iterator = answer["NextShardIterator"]
        if not answer["Records"]:
            break
    return pages


@pytest.mark.parametrize("limit", [1000, 2])
def test_get_records_answers_what_moto_answers(stream, monkeypatch, limit):
    streams, arn = stream
    streamrecords.serve_records_fast()
    fast = DynamoDBStreamsHandler.get_records
    assert getattr(fast, "_taskfn_fast", False)
    with monkeypatch.context() as patched:
        patched.setattr(DynamoDBStreamsHandler, "get_records", fast.__wrapped__)
        expected = _pages(streams, arn, limit)
    got = _pages(streams, arn, limit)
    assert got == expected
    records = [record for page in got for record in page]
    assert [r["eventName"] for r in records] == ["INSERT"] * 3 + ["MODIFY", "REMOVE"]
    assert records[0]["dynamodb"]["NewImage"]["b"] == {"B": b"\x00\x01\xff"}
    assert not got[-1]  # read to the end: an empty page, and an iterator to go on with
    streamrecords.serve_records_fast()  # once: not wrapped twice
    assert DynamoDBStreamsHandler.get_records is fast


def test_a_record_is_made_into_json_once(stream):
    streams, arn = stream
    streamrecords.serve_records_fast()
    _pages(streams, arn, 1000)
    kept = len(streamrecords._texts)
    assert kept >= 5
    _pages(streams, arn, 1000)  # a second reader of the same records
    assert len(streamrecords._texts) == kept


def test_an_unknown_iterator_is_still_moto_s_error(stream):
    streams, _ = stream
    streamrecords.serve_records_fast()
    with pytest.raises(Exception) as raised:
        streams.get_records(ShardIterator="arn:aws:dynamodb:us-east-1:123456789012:table/t/"
                                          "stream/x|1|nothing")
    assert raised.value is not None
