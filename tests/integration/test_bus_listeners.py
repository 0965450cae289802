"""Task events go on the EventBridge bus only where a rule may take them (stores/bus.py):
real rules on moto's bus, a real SQS target, the real stream; PutEvents counted."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from taskfn import lifecycle, wiring
from taskfn.adapters.bbs_view import task_view
from taskfn.services.events import CHANGED, CREATED, TaskEvents
from taskfn.stores.bus import EVERY_KIND, RuleListeners, kinds_taken
from tests.integration.helpers import StreamReader
from tests.integration.test_task_events import a_task


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


@pytest.fixture
def bus(backend):
    """(events service, its listener clock, stream reader, PutEvents entries counted)."""
    service = TaskEvents.from_env()
    clock = Clock()
    service.bus.listeners.clock = clock
    sent: list[dict] = []
    client = boto3.client("events")
    client.meta.events.register(
        "provide-client-params.events.PutEvents",
        lambda params, **_: sent.extend(params["Entries"]))
    service.bus.client = client
    service.bus.listeners.client = client
    return service, clock, StreamReader(), sent


def watching(pattern: dict, name: str = "watch") -> str:
    """A rule on the task bus with `pattern`, delivering to a new queue; the queue's URL."""
    sqs, bridge = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    bus_name = os.environ["EVENT_BUS_NAME"]
    bridge.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps(pattern))
    bridge.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "q", "Arn": arn}])
    return queue


def received(queue: str) -> list[str]:
    answer = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=1)
    return [json.loads(m["Body"])["detail-type"] for m in answer.get("Messages", [])]


def two_events(service: TaskEvents, reader: StreamReader, guid: str) -> int:
    tasks = wiring.tasks()
    tasks.put_new(a_task(guid))
    tasks.apply(guid, lifecycle.start("cell-1", 2))
    return service.publish(reader.records("EventsFunction"), task_view)


def test_no_rule_on_the_bus_no_event_is_put_but_all_are_kept(bus):
    service, _, reader, sent = bus
    assert two_events(service, reader, "job-1") == 2
    assert sent == []
    assert service.bus_entries == 0
    item = wiring.table().client.query(
        TableName=wiring.table().name, KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "EVENTS#alice"}})["Items"]
    assert item, "the events are kept for /v1/events/tasks.r1 whatever the bus"


def test_a_rule_on_one_kind_gets_only_that_kind(bus):
    service, _, reader, sent = bus
    queue = watching({"source": ["taskfn.tasks"], "detail-type": [CHANGED]})
    two_events(service, reader, "job-1")
    assert [entry["DetailType"] for entry in sent] == [CHANGED]
    assert received(queue) == [CHANGED]


def test_a_rule_with_a_detail_filter_gets_every_kind_it_may_match(bus):
    service, _, reader, sent = bus
    queue = watching({"source": ["taskfn.tasks"], "detail": {"owner": ["alice"]}})
    two_events(service, reader, "job-1")
    assert [entry["DetailType"] for entry in sent] == [CREATED, CHANGED]
    assert sorted(received(queue)) == sorted([CREATED, CHANGED])


def test_a_rule_created_later_takes_events_from_the_next_refresh(bus):
    service, clock, reader, sent = bus
    two_events(service, reader, "job-1")
    assert sent == []
    queue = watching({"source": ["taskfn.tasks"]})
    two_events(service, reader, "job-2")
    assert sent == []  # the rules were read less than a refresh ago
    clock.s += service.settings.event_rules_refresh_s
    two_events(service, reader, "job-3")
    assert [entry["DetailType"] for entry in sent] == [CREATED, CHANGED]
    assert sorted(received(queue)) == sorted([CREATED, CHANGED])


def test_a_disabled_rule_or_another_source_takes_nothing(bus):
    service, _, reader, sent = bus
    watching({"source": ["someone.else"]}, name="other")
    watching({"source": ["taskfn.tasks"]}, name="off")
    boto3.client("events").disable_rule(Name="off", EventBusName=os.environ["EVENT_BUS_NAME"])
    two_events(service, reader, "job-1")
    assert sent == []


def test_rules_that_cannot_be_read_publish_everything(bus):
    service, _, reader, sent = bus

    class Refusing:
        def list_rules(self, **_):
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "ListRules")

    service.bus.listeners.client = Refusing()
    two_events(service, reader, "job-1")
    assert [entry["DetailType"] for entry in sent] == [CREATED, CHANGED]


@pytest.mark.parametrize("pattern, kinds", [
    ({"source": ["taskfn.tasks"]}, EVERY_KIND),
    ({"source": ["other"]}, frozenset()),
    ({"source": [{"prefix": "taskfn"}]}, EVERY_KIND),
    ({"detail-type": ["task_removed"]}, frozenset({"task_removed"})),
    ({"detail-type": [{"anything-but": "task_created"}]}, EVERY_KIND),
    ({"$or": [{"source": ["other"]}, {"detail-type": ["task_created"]}]}, EVERY_KIND),
    ({"source": []}, EVERY_KIND),
    ("not json", EVERY_KIND),
    ([1, 2], EVERY_KIND),
])
def test_kinds_taken_narrows_only_where_certain(pattern, kinds):
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    assert kinds_taken(text) == kinds


def test_listeners_page_through_every_rule(backend):
    bus_name = os.environ["EVENT_BUS_NAME"]
    bridge = boto3.client("events")
    for n in range(3):
        bridge.put_rule(Name=f"r{n}", EventBusName=bus_name,
                        EventPattern=json.dumps({"detail-type": [f"kind{n}"]}))
    calls = []
    bridge.meta.events.register("provide-client-params.events.ListRules",
                                lambda params, **_: calls.append(params) or params.update(Limit=1))
    listeners = RuleListeners(bridge, bus_name, refresh_s=60)
    assert listeners.kinds() == frozenset({"kind0", "kind1", "kind2"})
    assert len(calls) >= 3  # one page a rule
