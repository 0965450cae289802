"""The external cell's placement rule, without a platform: which listed tasks it may take."""

from __future__ import annotations

import pytest

from taskfn.cell import parse_tags, placeable

GPU_SSD = frozenset({"gpu", "ssd"})


def listed(state: str = "Pending", tags: list[str] | None = None) -> dict:
    return {"task_guid": "t", "state": state, "placement_tags": tags if tags is not None else []}


@pytest.mark.parametrize(("task", "expected"), [
    (listed(tags=["gpu"]), True),
    (listed(tags=["gpu", "ssd"]), True),                # every tag is the cell's
    (listed(tags=["ssd", "gpu", "gpu"]), True),          # order and repeats do not matter
    (listed(tags=["gpu", "arm"]), False),               # one tag the cell lacks
    (listed(tags=["arm"]), False),
    (listed(tags=[]), False),                           # untagged: the built-in executor's
    ({"task_guid": "t", "state": "Pending"}, False),    # no tags field at all
    (listed("Running", ["gpu"]), False),                # already taken
    (listed("Completed", ["gpu"]), False),
    (listed("Resolving", ["gpu"]), False),
])
def test_a_cell_takes_pending_tasks_whose_tags_it_all_has(task, expected):
    assert placeable(task, GPU_SSD) is expected


def test_a_cell_without_tags_takes_nothing():
    assert placeable(listed(tags=["gpu"]), frozenset()) is False


def test_tags_from_the_command_line():
    assert parse_tags("gpu, ssd,,gpu ") == GPU_SSD
    assert parse_tags("") == frozenset()
