"""The sharded open index against moto: tasks spread over its shards by a stable hash, and a
convergence pass reads every shard, oldest first across all of them, within its bound; a
truncated pass says so and the next one goes on. Clocks are injected."""

from __future__ import annotations

from collections import Counter

import pytest

from taskfn import wiring
from taskfn.models import TaskRecord, now_ns
from taskfn.services.converger import SECOND_NS, Converger
from taskfn.settings import get_settings
from taskfn.stores.tasks import OPEN, OPEN_SHARDS, open_partition, open_partitions

from .helpers import open_keys

S = SECOND_NS
T0 = now_ns()


def converger(**settings) -> Converger:
    return Converger(wiring.tasks(), wiring.task_queue(),
                     get_settings().model_copy(update=settings), now=lambda: T0)


def put(guid: str, *, age_s: float) -> None:
    created = T0 - int(age_s * S)
    assert wiring.tasks().put_new(TaskRecord(task_guid=guid, owner="alice", created_at=created,
                                             updated_at=created, placement_tags=["gpu"]))


def test_tasks_spread_over_the_shards_and_a_pass_sees_every_one(backend):
    guids = [f"spread-{n:03d}" for n in range(64)]
    for n, guid in enumerate(guids):
        put(guid, age_s=10 + n)  # young, tagged: a pass changes none of them
    table = wiring.table()
    shards = Counter(table.get(f"TASK#{g}", "TASK")["GSI3PK"] for g in guids)
    assert set(shards) <= set(open_partitions()) and OPEN not in shards
    assert len(shards) >= OPEN_SHARDS // 2  # 64 tasks land on most of the 16 shards
    assert all(shards[open_partition(g)] for g in guids)  # every process hashes alike
    report = converger().run()
    assert (report.open, report.truncated) == (64, False)
    assert open_keys() == sorted(f"TASK#{g}" for g in guids)


@pytest.mark.slow
def test_a_bounded_pass_takes_the_oldest_across_shards_and_the_next_pass_goes_on(backend):
    # 40 tasks past the pending expiry; t00 the oldest. Any 15 of them span several shards.
    for n in range(40):
        put(f"t{n:02d}", age_s=2000 - n)
    first = converger(converger_max_tasks=15).run()
    assert (first.open, first.expired, first.truncated) == (15, 15, True)
    gone = {f"TASK#t{n:02d}" for n in range(15)}
    assert set(open_keys()) == {f"TASK#t{n:02d}" for n in range(40)} - gone  # oldest first
    second = converger(converger_max_tasks=15).run()
    assert (second.open, second.expired, second.truncated) == (15, 15, True)
    third = converger(converger_max_tasks=15).run()
    assert (third.open, third.expired, third.truncated) == (10, 10, False)
    assert open_keys() == []


def test_a_pass_also_reads_tasks_indexed_before_sharding(backend):
    put("legacy", age_s=2000)
    wiring.table().client.update_item(  # as the unsharded index wrote it
        TableName=wiring.table().name, Key={"PK": {"S": "TASK#legacy"}, "SK": {"S": "TASK"}},
        UpdateExpression="SET GSI3PK = :open", ExpressionAttributeValues={":open": {"S": OPEN}})
    put("sharded", age_s=10)
    report = converger().run()
    assert (report.open, report.expired) == (2, 1)
    assert wiring.tasks().get("legacy").state == "Completed"


def test_the_merge_reads_shards_a_page_at_a_time_and_stays_oldest_first(backend):
    for n in range(30):
        put(f"m{n:02d}", age_s=1000 - n)
    calls = []

    def count(**_):
        calls.append(1)

    client = wiring.table().client
    client.meta.events.register("before-call.dynamodb.Query", count)
    try:
        items, more = wiring.table().query_merged("GSI3", open_partitions(), bound=20, page=2)
    finally:
        client.meta.events.unregister("before-call.dynamodb.Query", count)
    assert [item["PK"] for item in items] == [f"TASK#m{n:02d}" for n in range(20)]
    assert more is True
    # Lazily: a first page of each of the 17 partitions, then only what the merge needs.
    assert len(calls) < len(open_partitions()) + 20
    everything, more = wiring.table().query_merged("GSI3", open_partitions(), bound=30, page=2)
    assert (len(everything), more) == (30, False)
