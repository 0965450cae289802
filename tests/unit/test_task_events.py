"""Pure parts of task events: ids, stream filters, the template's stream mapping, records."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskfn.adapters.bbs_view import task_view
from taskfn.errors import InvalidRequest
from taskfn.local.pollers import matches, passes
from taskfn.local.template import load_template
from taskfn.services.callbacks import newly_completed
from taskfn.services.events import CHANGED, event_of
from taskfn.stores.events import Cursor, _chunks, position

ROOT = Path(__file__).resolve().parents[2]
TASK_KEYS = {"PK": {"S": "TASK#job-1"}, "SK": {"S": "TASK"}}


def image(**fields: str) -> dict:
    base = {"task_guid": "job-1", "owner": "alice", "state": "Pending"}
    values = {k: {"S": v} for k, v in (base | fields).items()}
    return TASK_KEYS | values | {"created_at": {"N": "1"}, "updated_at": {"N": "1"}}


def test_an_event_id_and_a_position_parse_to_where_a_reader_resumes():
    assert Cursor.parse("1800000000000-1234.7") == Cursor("1800000000000-1234", 7)
    assert Cursor.parse("0") == Cursor(position(0), -1)
    assert Cursor.parse("42") == Cursor("0000000000042", -1)
    for bad in ("", "abc", "1-2", "1.2", "1-2.x", "12345678901234"):
        with pytest.raises(InvalidRequest):
            Cursor.parse(bad)


def test_positions_sort_before_the_events_written_in_their_millisecond():
    assert position(5) < "0000000000005-1" < position(6)


def test_chunks_keep_order_and_split_only_what_does_not_fit():
    small = [{"kind": "k", "data": {"n": n}} for n in range(50)]
    assert [offset for offset, _ in _chunks(small)] == [0]
    noisy = [{"kind": "k", "data": {"x": bytes(range(256)).hex() * 400}} for _ in range(3)]
    offsets = [offset for offset, _ in _chunks(noisy)]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_a_change_of_updated_at_alone_is_no_event_and_other_items_are_ignored():
    beat = {"eventName": "MODIFY", "dynamodb": {
        "OldImage": image(), "NewImage": image() | {"updated_at": {"N": "9"}}}}
    assert event_of(beat, task_view) is None
    moved = {"eventName": "MODIFY", "dynamodb": {
        "OldImage": image(), "NewImage": image(state="Running", cell_id="c")}}
    event = event_of(moved, task_view)
    assert event is not None and event.kind == CHANGED and event.owner == "alice"
    token = {"eventName": "INSERT", "dynamodb": {
        "NewImage": {"PK": {"S": "TOKEN#x"}, "SK": {"S": "TOKEN"}}}}
    assert event_of(token, task_view) is None


def test_filter_patterns_match_exact_values_and_prefixes():
    pattern = {"dynamodb": {"Keys": {"SK": {"S": ["TASK"]}}}}
    assert matches(pattern, {"dynamodb": {"Keys": TASK_KEYS}})
    assert not matches(pattern, {"dynamodb": {"Keys": {"SK": {"S": "EVENTS"}}}})
    assert not matches(pattern, {"dynamodb": {}})
    assert matches({"a": [{"prefix": "x"}]}, {"a": "xy"})
    assert not matches({"a": [{"prefix": "x"}]}, {"a": "yx"})
    assert not matches({"a": [{"anything-but": "x"}]}, {"a": "y"})  # not emulated: no match


def test_the_template_maps_the_table_stream_to_the_events_function_for_tasks_only():
    template = load_template(ROOT / "template.yaml")
    (source,) = [s for s in template.stream_sources if s.function_id == "EventsFunction"]
    assert source.table_id == "Table"
    assert source.starting_position == "TRIM_HORIZON"
    assert source.filters == ({"dynamodb": {"Keys": {"SK": {"S": ["TASK"]}}}},)
    routes = {(r.method, r.path) for r in template.routes if r.function_id == "TaskEventsFunction"}
    assert routes == {("GET", "/v1/events/tasks.r1"), ("POST", "/v1/events/tasks.r1")}


def test_callbacks_are_queued_from_the_stream_only_for_tasks_entering_completed_with_a_url():
    template = load_template(ROOT / "template.yaml")
    (source,) = [s for s in template.stream_sources
                 if s.function_id == "CallbackEnqueueFunction"]
    url = {"completion_callback_url": {"S": "https://example.com/done"}}

    def change(old: str, new: str, **extra) -> dict:
        return {"eventName": "MODIFY", "dynamodb": {
            "OldImage": image(state=old) | url, "NewImage": image(state=new) | url | extra}}

    entering = change("Running", "Completed")
    demoted = change("Resolving", "Completed")
    passing = [r for r in (entering, demoted, change("Completed", "Resolving"),
                           change("Pending", "Running"),
                           change("Running", "Completed", completion_callback_url={"S": ""}))
               if passes(r, source.filters)]
    assert passing == [entering, demoted]
    # Past the filter, a change from Completed to Completed (none today) is not a new entry.
    assert newly_completed([entering, change("Completed", "Completed"), demoted]) == ["job-1"]


def test_putevents_calls_hold_at_most_ten_entries_and_stay_under_the_size_limit():
    from taskfn.stores.bus import CALL_MAX_BYTES, _calls, entry_bytes

    def entry(kb: int) -> dict:
        return {"Source": "taskfn.tasks", "DetailType": "task_changed", "Detail": "x" * kb * 1024}

    small = [entry(1) for _ in range(25)]
    assert [len(call) for call in _calls(small)] == [10, 10, 5]
    large = [entry(30) for _ in range(10)]  # 300 KB in all: more than one request takes
    calls = _calls(large)
    assert len(calls) == 2 and sum(len(c) for c in calls) == 10
    assert all(sum(entry_bytes(e) for e in call) <= CALL_MAX_BYTES for call in calls)
    assert [e for call in calls for e in call] == large  # order kept
