"""User JSON: the one strict parse every API uses, and the text form it is stored in.

What users send (bodies, queries, task inputs and definitions) is kept as JSON text, never
converted to DynamoDB's types: those are not JSON's (no empty names in maps, 38 digits per
number, 32 levels of nesting), and an item that DynamoDB or moto stores but cannot read back
breaks every reader of it. What JSON allows but taskfn cannot keep faithfully is refused here,
once, with a 400: NaN and Infinity (not JSON at all), numbers beyond a double's range or too
long for Python to parse, lone surrogates (not Unicode text), and nesting deeper than
MAX_DEPTH (deeper values cannot be rendered again without running out of stack). As JSON
parsers do, a repeated name keeps its last value, and numbers are kept as Python reads them
(-0 is 0, 1e-400 is 0.0).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from taskfn.errors import InvalidRequest

MAX_DEPTH = 64
# What the nesting count looks at: brackets, and quotes and backslashes to skip strings.
_SPECIAL = re.compile(r'[\[\]{}"\\]')


class MalformedJSON(InvalidRequest):
    """Not JSON at all (a caller may then take the text as text)."""


class TooDeep(InvalidRequest):
    """Nested past MAX_DEPTH (or not JSON at all: the count comes before the parse)."""


def _no_constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not JSON", "numbers must be finite")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidRequest(f"the number {text[:40]} is out of range",
                             "JSON numbers must fit a double")
    return value


def loads(data: bytes | str, *, what: str = "body") -> Any:
    """Parse strictly; MalformedJSON when it is not JSON, InvalidRequest when it is JSON that
    taskfn cannot keep (see the module's docstring)."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedJSON(f"the {what} is not UTF-8 text") from error
    else:
        text = data
    _check_depth(text, what)
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as error:
        raise MalformedJSON(f"malformed JSON {what}", str(error)) from error
    except ValueError as error:  # an integer longer than Python parses
        raise InvalidRequest(f"the {what} cannot be read", str(error)) from error
    except RecursionError as error:
        raise TooDeep(f"the {what} nests more than {MAX_DEPTH} levels") from error
    if "\\u" in text or "\\U" in text:  # only escapes can make a lone surrogate
        _check_text(value, what)
    return value


def dumps(value: Any) -> str:
    """The compact text a value is stored as; InvalidRequest for a value that is not JSON
    (a lone surrogate, NaN). Nesting is the parser's business: a stored value may wrap what
    was parsed in a level or two of its own."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise InvalidRequest("the value is not JSON", str(error)) from error
    except RecursionError as error:
        raise InvalidRequest(f"the value nests more than {MAX_DEPTH} levels") from error
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest("the value has a string that is not Unicode text",
                             "a lone surrogate") from error
    return text


def _check_depth(text: str, what: str) -> None:
    """Nesting counted on the text, before parsing: deep input must not reach the parser's
    recursion. One pass over the special characters only (linear, whatever the input), and
    nothing at all when there are few brackets, as there usually are."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    in_string = False
    escaped_at = -1  # the position of the character a backslash escapes
    for match in _SPECIAL.finditer(text):
        char, position = match.group(), match.start()
        if position == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeep(f"the {what} nests more than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _check_text(value: Any, what: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequest(f"the {what} has a string that is not Unicode text",
                             "a lone surrogate (\\ud800-\\udfff) is not a character") from error
