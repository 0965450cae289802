"""The one strict JSON parse (issue 9): what it keeps, what it refuses, and how."""

from __future__ import annotations

import json

import pytest

from taskfn import userjson
from taskfn.errors import InvalidRequest


@pytest.mark.parametrize("text", [
    '{"":1}', '{"n":123456789012345678901234567890123456789012345}', '1e308', '-0.0',
    '"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',
    "[" * userjson.MAX_DEPTH + "]" * userjson.MAX_DEPTH, '"\\ud83d\\ude00"',
])
def test_what_json_allows_is_kept_exactly(text):
    value = userjson.loads(text)
    assert value == json.loads(text)
    assert json.loads(userjson.dumps(value)) == value


@pytest.mark.parametrize(("text", "malformed"), [
    ("NaN", True), ("[Infinity]", True), ("-Infinity", True), ("{", True), (b"\xff", True),
    ("1e400", False), ('"\\ud800"', False), ('{"a":["\\udc00"]}', False),
    ("[" * (userjson.MAX_DEPTH + 1) + "]" * (userjson.MAX_DEPTH + 1), False),
    ("9" * 5000, False),
])
def test_what_cannot_be_kept_is_refused(text, malformed):
    with pytest.raises(InvalidRequest) as refused:
        userjson.loads(text)
    assert isinstance(refused.value, userjson.MalformedJSON) is malformed
    assert refused.value.status == 400


def test_dumps_refuses_what_is_not_json():
    for value in (float("nan"), {"a": "\ud800"}):
        with pytest.raises(InvalidRequest):
            userjson.dumps(value)


def test_the_nesting_count_is_one_pass_whatever_the_strings():
    """An unterminated string of escaped quotes made the old count quadratic (hours for a
    megabyte, holding the GIL): now it is refused after one pass."""
    hostile = "[" * 65 + '"' + '\\"' * 500_000
    with pytest.raises(userjson.TooDeep):
        userjson.loads(hostile)
    deep_in_strings = "[" + '"' + "[" * 1000 + '\\"' + "]" * 1000 + '"' + "]"
    assert userjson.loads(deep_in_strings) == [json.loads(deep_in_strings)[0]]
