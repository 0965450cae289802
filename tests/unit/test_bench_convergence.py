"""The convergence benchmark's pure helpers: the task mix it builds (each task needs exactly
the step it was built for), the item shape it writes, DynamoDB's size and read-unit rules, and
how a pass's report is checked. No benchmark is run here."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.convergence import (
    KINDS,
    item_size,
    minimum_requests,
    mismatches,
    read_units,
    record_item,
    split,
    task_mix,
    value_size,
)
from taskfn.services.converger import SECOND_NS, Step, step_for
from taskfn.settings import Settings
from taskfn.stores.table import to_item
from taskfn.stores.tasks import OPEN_SHARDS, open_partition, open_partitions

NOW = 1_800_000_000 * SECOND_NS


# --- split -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 7, 99, 1000, 10_000])
def test_split_sums_to_the_count_and_stays_within_one_of_each_share(count):
    shares = [k.share for k in KINDS]
    parts = split(count, shares)
    assert sum(parts) == count
    total = sum(shares)
    exact = [count * share / total for share in shares]
    assert all(abs(part - e) < 1 for part, e in zip(parts, exact, strict=True))


def test_split_gives_the_leftover_to_the_largest_remainders():
    assert split(10, [0.6, 0.4]) == [6, 4]
    assert split(3, [0.5, 0.3, 0.2]) == [1, 1, 1]  # exact 1.5, 0.9, 0.6
    assert split(4, [0.5, 0.3, 0.2]) == [2, 1, 1]  # exact 2, 1.2, 0.8
    assert split(2, [1, 1, 1]) in ([1, 1, 0], [1, 0, 1], [0, 1, 1])


# --- the mix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(dispatch_grace_s=5, pending_expiry_s=600, cell_heartbeat_s=10,
                 cell_timeout_s=20, kick_duration_s=10, completed_expiry_s=45),
    ],
    ids=["defaults", "short"],
)
def test_every_task_of_the_mix_needs_exactly_the_step_it_was_built_for(settings):
    mix = task_mix(1000, NOW, settings)
    wrong = [
        (kind.name, step_for(task, NOW, settings))
        for kind, task in mix
        if step_for(task, NOW, settings) != kind.step
    ]
    assert wrong == []
    sizes = split(1000, [k.share for k in KINDS])
    assert Counter(kind.name for kind, _ in mix) == {
        kind.name: size for kind, size in zip(KINDS, sizes, strict=True)
    }


def test_the_mix_has_every_step_and_mostly_young_pending_tasks():
    mix = task_mix(1000, NOW, Settings())
    steps = Counter(kind.step for kind, _ in mix)
    # Every step but a disabled node's: the bench's tasks run on the built-in executor.
    assert set(steps) == {None, *Step} - {Step.NODE_DISABLED}
    young = sum(1 for kind, task in mix if kind.shape == "young" and task.state == "Pending")
    assert young > len(mix) / 2


def test_kinds_are_interleaved_not_in_blocks():
    mix = task_mix(1000, NOW, Settings())
    first_hundred = {kind.name for kind, _ in mix[:100]}
    assert len(first_hundred) >= 5


def test_every_task_is_written_on_the_open_index_with_a_unique_key():
    items = [record_item(task) for _, task in task_mix(500, NOW, Settings())]
    assert all(item["GSI3PK"] == open_partition(item["task_guid"]) for item in items)
    # spread over every shard, each of which the pass (and the floor) reads
    assert {item["GSI3PK"] for item in items} == set(open_partitions()[1:])
    assert len(open_partitions()) == OPEN_SHARDS + 1
    assert len({item["PK"] for item in items}) == len(items)
    # GSI3SK orders by age, as the open index does
    assert all(item["GSI3SK"].startswith(f"{item['created_at']:020d}#") for item in items)


def test_finished_tasks_keep_the_open_index_only_with_a_callback_or_through_the_cell_api():
    mix = task_mix(1000, NOW, Settings())
    finished = [(kind, task) for kind, task in mix if task.finished]
    assert finished, "the mix has finished tasks with callbacks"
    assert all(task.completion_callback_url for _, task in finished)
    cell_api = finished[0][1].model_copy(update={"completion_callback_url": ""})
    assert "GSI3PK" in record_item(cell_api)  # deleted by convergence after the expiry
    greencloud = cell_api.model_copy(update={"task_definition": None})
    assert "GSI3PK" not in record_item(greencloud)


def test_cell_api_tasks_are_listed_by_their_domain():
    mix = task_mix(1000, NOW, Settings())
    tagged = [task for kind, task in mix if kind.shape == "tagged"]
    assert tagged and all(record_item(t)["GSI4PK"] == "DOMAIN#bench" for t in tagged)
    greencloud = [task for kind, task in mix if kind.shape == "young"]
    assert all("GSI4PK" not in record_item(t) for t in greencloud)


# --- sizes and read units ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "é"}, 2),  # UTF-8 bytes, not characters
        ({"N": "123"}, 3),  # 2 bytes for 3 significant digits + 1
        ({"N": "1000"}, 2),  # trailing zeros are not significant
        ({"N": "-0.50"}, 2),
        ({"BOOL": True}, 1),
        ({"NULL": True}, 1),
        ({"B": b"\x00\x01"}, 2),
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (1 + 2) + (1 + 2)),
        ({"M": {"k": {"S": "xy"}}}, 3 + 1 + 1 + 2),
        ({"SS": ["a", "bc"]}, 3),
    ],
)
def test_value_sizes_follow_dynamodb_rules(value, size):
    assert value_size(value) == size


def test_item_size_counts_names_and_values():
    assert item_size(to_item({"PK": "TASK#a", "n": 12})) == (2 + 6) + (1 + 2)


def test_read_units_round_per_item_or_per_page():
    assert read_units([100, 5000], per_item=True) == 0.5 * (1 + 2)
    assert read_units([3000, 3000], per_item=False) == 0.5 * 2
    assert read_units([10] * 100, per_item=True) == 50
    assert read_units([10] * 100, per_item=False) == 0.5
    assert read_units([], per_item=False) == 0.5  # an empty page still costs its minimum


# --- checking a pass ---------------------------------------------------------------------


def _expected() -> Counter:
    return Counter({Step.EXPIRE: 5, Step.DISPATCH: 21, Step.CELL_LOST: 8, Step.DEMOTE: 1,
                    Step.DELETE: 1, Step.KICK: 2})


def test_minimum_requests_counts_reads_writes_and_batched_sends():
    # 2 pages + 10 BatchGetItem + 15 writes + 3 dispatch batches + 1 callback batch, and a
    # counters ADD per function of the 13 finished (fewer functions than that: each its own)
    assert minimum_requests(1000, 2, _expected()) == 2 + 10 + 15 + 3 + 1 + 13
    assert minimum_requests(1001, 1, Counter()) == 1 + 11


def _report(**changes: object) -> dict:
    report = {"open": 100, "expired": 5, "dispatched": 21, "cell_lost": 8, "demoted": 1,
              "deleted": 1, "kicked": 2, "lost_races": 0, "dispatch_failures": 0,
              "kick_failures": 0, "truncated": False}
    return {**report, **changes}


def test_a_report_matching_the_mix_has_no_mismatch():
    assert mismatches(_expected(), _report(), 100) == []


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"expired": 4}, "expired 4 (expected 5)"),
        ({"open": 99}, "open 99"),
        ({"lost_races": 3}, "lost_races 3"),
        ({"kick_failures": 1}, "kick_failures 1"),
        ({"truncated": True}, "truncated"),
    ],
)
def test_a_report_off_the_mix_is_flagged(changes, word):
    found = mismatches(_expected(), _report(**changes), 100)
    assert len(found) == 1 and word in found[0]
