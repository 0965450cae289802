"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def calls(aws_calls) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every AWS request made meanwhile, as (operation, parameters) (tests/conftest.py's
    aws_calls, under the name these modules use)."""
    yield aws_calls
