"""Task events on moto: real task writes, the table's real stream, the events service keeping
them for readers and publishing them on the EventBridge bus."""

from __future__ import annotations

import json
import os
import random
import string

import boto3
import pytest

from taskfn import lifecycle, wiring
from taskfn.adapters.bbs_view import task_view
from taskfn.errors import InvalidRequest
from taskfn.models import Caller, Scope, TaskRecord
from taskfn.services.events import CHANGED, CREATED, REMOVED, TaskEvents
from tests.integration.helpers import ALICE, BOB, StreamReader


class Clock:
    """Milliseconds that tests move by hand, so the settle interval is exact."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def ns(self) -> int:
        return self.ms * 1_000_000


@pytest.fixture
def events(backend):
    clock = Clock()
    service = TaskEvents.from_env()
    service.clock_ns = clock.ns
    service.sleep = lambda seconds: None
    return service, clock, StreamReader()


def a_task(guid: str, owner: str = "alice") -> TaskRecord:
    return TaskRecord(task_guid=guid, owner=owner, domain="demo", task_definition={},
                      placement_tags=["gpu"], created_at=1, updated_at=1)


def publish(service: TaskEvents, reader: StreamReader) -> int:
    return service.publish(reader.records("EventsFunction"), task_view)


def read(service: TaskEvents, caller: Caller, last: str | None, wait_s: float = 0):
    return service.read(caller, last, wait_s=wait_s)


def test_each_change_of_a_task_is_one_event_in_order(events):
    service, clock, reader = events
    tasks = wiring.tasks()
    tasks.put_new(a_task("job-1"))
    tasks.apply("job-1", lifecycle.start("cell-1", 2))
    tasks.apply("job-1", lifecycle.heartbeat("cell-1", 3))  # only updated_at: no event
    tasks.apply("job-1", lifecycle.complete("cell-1", 4, failed=False, result="42"))
    tasks.apply("job-1", lifecycle.resolving(5))
    tasks.remove("job-1", lifecycle.delete())
    assert publish(service, reader) == 5
    clock.ms += 5_000

    page = read(service, ALICE, "0")
    kinds = [event.kind for event in page.events]
    assert kinds == [CREATED, CHANGED, CHANGED, CHANGED, REMOVED]
    created, started, completed, resolving, removed = (e.data for e in page.events)
    assert created["task"]["state"] == "Pending" and created["task"]["task_guid"] == "job-1"
    assert (started["before"]["state"], started["after"]["state"]) == ("Pending", "Running")
    assert started["after"]["cell_id"] == "cell-1"
    assert (completed["after"]["state"], completed["after"]["result"]) == ("Completed", "42")
    assert resolving["after"]["state"] == "Resolving"
    assert removed["task"]["state"] == "Resolving"
    assert page.resume_id == page.events[-1].id


def test_a_reader_resumes_after_the_last_id_it_saw(events):
    service, clock, reader = events
    tasks = wiring.tasks()
    tasks.put_new(a_task("job-1"))
    publish(service, reader)
    clock.ms += 10
    tasks.apply("job-1", lifecycle.start("cell-1", 2))
    tasks.put_new(a_task("job-2"))
    publish(service, reader)
    clock.ms += 5_000

    everything = read(service, ALICE, "0").events
    assert len(everything) == 3
    for seen in range(3):
        rest = read(service, ALICE, everything[seen].id).events
        assert [e.id for e in rest] == [e.id for e in everything[seen + 1:]]


def test_no_event_yet_moves_the_resume_id_forward_without_losing_later_ones(events):
    service, clock, reader = events
    quiet = read(service, ALICE, None)
    assert quiet.events == []
    wiring.tasks().put_new(a_task("job-1"))
    publish(service, reader)
    clock.ms += 5_000
    later = read(service, ALICE, quiet.resume_id)
    assert [e.kind for e in later.events] == [CREATED]


def test_events_are_seen_only_once_settled(events):
    service, clock, reader = events
    wiring.tasks().put_new(a_task("job-1"))
    publish(service, reader)
    settle_ms = int(service.settings.events_settle_s * 1000)
    assert settle_ms > 0
    clock.ms += settle_ms - 1
    early = read(service, ALICE, "0")
    assert early.events == []
    clock.ms += 2
    assert [e.kind for e in read(service, ALICE, early.resume_id).events] == [CREATED]


def test_readers_see_only_their_own_tasks(events):
    service, clock, reader = events
    tasks = wiring.tasks()
    tasks.put_new(a_task("alice-1", "alice"))
    tasks.put_new(a_task("bob-1", "bob"))
    publish(service, reader)
    clock.ms += 5_000
    assert [e.data["task"]["task_guid"] for e in read(service, ALICE, "0").events] == ["alice-1"]
    assert [e.data["task"]["task_guid"] for e in read(service, BOB, "0").events] == ["bob-1"]
    admin = Caller(user="admin", scope=Scope.ADMIN)
    assert read(service, admin, "0").events == []


def test_a_large_batch_is_split_into_items_that_fit(events):
    service, clock, _ = events
    # Random annotations hardly compress: 60 × 9 KB needs more than one item.
    rng = random.Random(7)
    records = []
    for number in range(60):
        noise = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(9000))
        task = a_task(f"job-{number}").model_copy(update={"annotation": noise})
        records.append({"eventName": "INSERT", "dynamodb": {
            "SequenceNumber": str(1000 + number),
            "NewImage": {"PK": {"S": f"TASK#{task.task_guid}"}, "SK": {"S": "TASK"},
                         **_image(task)}}})
    published = []
    service.bus = type("Bus", (), {
        "publish": lambda self, events: published.extend(events) or len(events)})()
    assert service.publish(records, task_view) == 60
    clock.ms += 5_000
    page = read(service, ALICE, "0")
    assert [e.data["task"]["task_guid"] for e in page.events] == [f"job-{n}" for n in range(60)]
    assert len({e.id.rsplit(".", 1)[0] for e in page.events}) > 1
    # The bus carries the very ids a reader resumes from.
    assert [event["id"] for event in published] == [e.id for e in page.events]
    resumed = read(service, ALICE, published[40]["id"]).events
    assert [e.data["task"]["task_guid"] for e in resumed] == [f"job-{n}" for n in range(41, 60)]


def _image(task: TaskRecord) -> dict:
    from taskfn.stores.table import to_item

    return to_item(task.model_dump(mode="json", exclude_defaults=True) | {
        "state": task.state.value, "created_at": 1, "updated_at": 1})


def test_a_bad_last_event_id_is_invalid_request(events):
    service, _, _ = events
    for bad in ("yesterday", "1-2", "12.3", "-1", "1" * 20):
        with pytest.raises(InvalidRequest):
            read(service, ALICE, bad)


def test_waiting_polls_until_an_event_arrives(events):
    service, clock, reader = events
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            wiring.tasks().put_new(a_task("job-1"))
            publish(service, reader)
        clock.ms += 1_500

    service.sleep = sleep
    page = service.read(ALICE, None, wait_s=30)
    assert [e.kind for e in page.events] == [CREATED]
    assert len(polls) >= 3


def test_events_are_published_on_the_bus(events):
    service, clock, reader = events
    sqs, bridge = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="bus-watch")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    bus = os.environ["EVENT_BUS_NAME"]
    bridge.put_rule(Name="all-tasks", EventBusName=bus,
                    EventPattern=json.dumps({"source": ["taskfn.tasks"]}))
    bridge.put_targets(Rule="all-tasks", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    tasks = wiring.tasks()
    tasks.put_new(a_task("job-1"))
    tasks.apply("job-1", lifecycle.start("cell-1", 2))
    publish(service, reader)

    received = []
    for _ in range(5):
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        received.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
        if len(received) >= 2:
            break
    assert [m["detail-type"] for m in received] == [CREATED, CHANGED]
    assert received[0]["detail"]["owner"] == "alice"
    assert received[1]["detail"]["after"]["state"] == "Running"
    clock.ms += 5_000
    stored = read(service, ALICE, "0")
    assert [m["detail"]["id"] for m in received] == [e.id for e in stored.events]


def test_a_write_slower_than_half_the_settle_time_is_written_again_later(events):
    """A reader that moved past an item's stamp while its write was in flight would miss it:
    such an item is written again with a fresh stamp (seen twice, never missed)."""
    service, clock, reader = events
    table = service.store.table
    real_put, writes = table.put, []

    def slow_first_put(values):
        writes.append(values["SK"])
        real_put(values)
        if len(writes) == 1:
            clock.ms += 1_500  # the first write took 1.5 s: more than half the 2 s settle

    table.put = slow_first_put
    try:
        wiring.tasks().put_new(a_task("job-1"))
        assert publish(service, reader) == 1
    finally:
        table.put = real_put
    assert len(writes) == 2 and writes[0] < writes[1]
    # A reader that read right before the slow write landed resumes past its stamp…
    resume_after_first = writes[0].split("-")[0]
    clock.ms += 5_000
    later = read(service, ALICE, str(int(resume_after_first) + 1)).events
    # …and still gets the event, from the second write.
    assert [e.data["task"]["task_guid"] for e in later] == ["job-1"]
