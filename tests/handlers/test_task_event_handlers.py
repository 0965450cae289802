"""The events Lambda and the events route, each invoked with its events/ file on moto."""

from __future__ import annotations

import copy

from taskfn.services.tokens import TokenService
from tests.handlers.test_events import SAMPLE_TOKEN, handler_module, invoke, load_event
from tests.integration.helpers import parse_sse


def test_the_stream_sample_becomes_events_a_reader_gets(backend, monkeypatch):
    TokenService.from_env().create("alice", "user", token=SAMPLE_TOKEN)
    # (on_bus depends on the rules the handler's module last read: other tests make some)
    answer = invoke("EventsFunction", load_event("EventsFunction"))
    assert (answer["records"], answer["events"]) == (2, 2)

    events = handler_module("TaskEventsFunction").events
    unsettled = events.settings.model_copy(update={"events_settle_s": 0})
    monkeypatch.setattr(events, "settings", unsettled)
    answer = invoke("TaskEventsFunction", load_event("TaskEventsFunction"))
    assert answer["statusCode"] == 200, answer
    assert answer["headers"]["Content-Type"] == "text/event-stream"
    events = [f for f in parse_sse(answer["body"]) if "event" in f]
    assert [e["event"] for e in events] == ["task_created", "task_changed"]
    assert '"state":"Running"' in events[1]["data"]


def test_records_of_other_items_and_heartbeats_make_no_event(backend):
    sample = load_event("EventsFunction")
    token = copy.deepcopy(sample["Records"][0])
    token["dynamodb"]["NewImage"] = {"PK": {"S": "TOKEN#abc"}, "SK": {"S": "TOKEN"},
                                     "user": {"S": "alice"}}
    heartbeat = copy.deepcopy(sample["Records"][1])
    heartbeat["dynamodb"]["OldImage"] = copy.deepcopy(heartbeat["dynamodb"]["NewImage"])
    heartbeat["dynamodb"]["NewImage"]["updated_at"] = {"N": "1795341609000000000"}
    assert invoke("EventsFunction", {"Records": [token, heartbeat]}) == {"records": 2,
                                                                          "events": 0,
                                                                          "on_bus": 0}


def test_the_events_route_refuses_a_bad_wait_in_the_bbs_shape(backend):
    TokenService.from_env().create("alice", "user", token=SAMPLE_TOKEN)
    event = load_event("TaskEventsFunction")
    event["queryStringParameters"] = {"wait": "forever"}
    answer = invoke("TaskEventsFunction", event)
    assert (answer["statusCode"], '"InvalidRequest"' in answer["body"]) == (200, True)


def test_the_enqueue_sample_queues_the_callback_of_the_task_it_completes(backend):
    from taskfn import aws
    from taskfn.settings import get_settings
    from taskfn.stores.queue import decode

    assert invoke("CallbackEnqueueFunction", load_event("CallbackEnqueueFunction")) == {
        "queued": 1}
    answer = aws.client("sqs").receive_message(QueueUrl=get_settings().callback_queue_url,
                                               MaxNumberOfMessages=10)
    assert [decode(m["Body"]) for m in answer["Messages"]] == ["sample-task-1"]


def test_the_events_route_is_for_users_not_cells(backend):
    TokenService.from_env().create("alice", "user", token=SAMPLE_TOKEN)
    event = load_event("TaskEventsFunction")
    event["requestContext"]["authorizer"]["lambda"]["scope"] = "cell"
    answer = invoke("TaskEventsFunction", event)
    assert answer["statusCode"] == 403 and '"Forbidden"' in answer["body"]
