"""bench/write_units.py: DynamoDB's item sizes and index write rules, as documented."""

from __future__ import annotations

import pytest

from bench import write_units
from bench.write_units import Index, record_units, value_bytes


@pytest.mark.parametrize("value, size", [
    ({"S": "héllo"}, 6), ({"N": "100"}, 2), ({"N": "1.50"}, 2), ({"N": "1E+2"}, 2),
    ({"N": "1733350000000000000"}, 4), ({"N": "-12345"}, 4), ({"B": "AA=="}, 1),
    ({"B": b"abc"}, 3), ({"BOOL": True}, 1), ({"NULL": True}, 1),
    ({"L": [{"S": "ab"}]}, 3 + 1 + 2), ({"M": {"k": {"N": "7"}}}, 3 + 1 + 1 + 2),
])
def test_attribute_values_are_sized_by_dynamodb_s_rules(value, size):
    assert value_bytes(value) == size


OWNER = Index("GSI1", ("GSI1PK", "GSI1SK"), "INCLUDE", frozenset({"status"}))
OPEN = Index("GSI3", ("GSI3PK", "GSI3SK"), "KEYS_ONLY")


def record(old, new):
    return {"dynamodb": {"OldImage": old, "NewImage": new}}


def item(**values):
    return {"PK": {"S": "TASK#1"}, "SK": {"S": "TASK"},
            **{k: {"S": v} for k, v in values.items()}}


def test_index_entries_count_only_when_what_they_hold_changes():
    put = record(None, item(GSI1PK="o", GSI1SK="1", GSI3PK="open", GSI3SK="1", status="p"))
    assert record_units(put, [OWNER, OPEN]) == {"table": 1, "GSI1": 1, "GSI3": 1}
    start = record(put["dynamodb"]["NewImage"],
                   {**put["dynamodb"]["NewImage"], "cell": {"S": "c"}})
    assert record_units(start, [OWNER, OPEN]) == {"table": 1}  # nothing projected changed
    done = dict(start["dynamodb"]["NewImage"], status={"S": "done"})
    done.pop("GSI3PK")
    assert record_units(record(start["dynamodb"]["NewImage"], done), [OWNER, OPEN]) == {
        "table": 1, "GSI1": 1, "GSI3": 1}  # an update in place, a removal
    moved = dict(done, GSI1SK={"S": "2"})
    assert record_units(record(done, moved), [OWNER, OPEN]) == {"table": 1, "GSI1": 2}


def test_ttl_deletes_are_free():
    ttl = {"eventName": "REMOVE", "userIdentity": {"principalId": "dynamodb.amazonaws.com"},
           "dynamodb": {"OldImage": item(GSI1PK="o", GSI1SK="1")}}
    assert write_units.summed([ttl], [OWNER]) == {}


def test_the_larger_image_sets_the_units():
    big = item(blob="x" * 3000)
    assert record_units(record(big, item()), [])["table"] == 3
