"""notify's e-mail addresses: checked without a backtracking pattern, so the longest body an
enqueue takes (128 KiB of one address made of dots) is refused as plainly as a short one."""

from __future__ import annotations

import json

import pytest

from taskfn.adapters.fastlane import ENQUEUE_BODY_MAX, PlainBadRequest, parse_enqueue


def enqueue(address: str):
    return parse_enqueue(json.dumps({"image": "a", "command": "b",
                                     "notify": {"fails": [address]}}).encode())


@pytest.mark.parametrize("address", [
    "a@" + "." * (ENQUEUE_BODY_MAX - 200) + " ",  # quadratic for r"[^@\s]+@[^@\s]+\.[^@\s]+"
    "a@b", "a@.b", "a@b.", "@b.c", "a@@b.c", "a b@c.d", "x" * 250 + "@b.co"])
def test_what_is_not_an_address_is_a_plain_400(address):
    with pytest.raises(PlainBadRequest, match="e-mail addresses"):
        enqueue(address)


def test_an_address_is_taken_as_given():
    assert enqueue("ops+jobs@mail.example.com").notify == {
        "fails": ("ops+jobs@mail.example.com",)}
