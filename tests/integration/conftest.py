"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient


@pytest.fixture
def calls(monkeypatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every AWS request made meanwhile, as (operation, parameters)."""
    made: list[tuple[str, dict[str, Any]]] = []
    call = BaseClient._make_api_call

    def recorded(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        made.append((operation, params))
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    yield made
