"""Public endpoints against moto: create, read, patch, list, delete, their bounds and 404s;
public calls with their refusals (daily limit under 200 concurrent calls, Origin, IP from the
source address only, the time window); the public result's window and the owner's token."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest

from taskfn import wiring
from taskfn.adapters import greencloud_endpoints as adapter
from taskfn.adapters.greencloud import parse_page_query
from taskfn.errors import Forbidden, InvalidRequest, NotFound, TooManyRequests
from taskfn.lifecycle import SECOND_NS
from taskfn.models import now_ns
from taskfn.services.endpoints import EndpointService, PublicCall, PublicService, within
from taskfn.services.tags import NewTag, TagService
from taskfn.services.tokens import TokenService
from taskfn.settings import get_settings
from taskfn.stores.metrics import endpoint_counters

from .helpers import ALICE, BOB
from .test_executor import executor, function_with

CODE = "def handler(event, context):\n    return {'hi': event['body'], 'q': event['query']}\n"


def service() -> EndpointService:
    return EndpointService.from_env()


def public() -> PublicService:
    return PublicService.from_env()


def endpoint(function_id: str, **body) -> str:
    return service().create(ALICE, function_id, adapter.parse_endpoint(body)).id


def call(endpoint_id: str, *, origin: str | None = None, ip: str = "203.0.113.10",
         body=None, now: int | None = None) -> str:
    return public().call(endpoint_id, PublicCall(origin=origin, source_ip=ip, body=body,
                                                 query={"q": "1"}, size=0), now=now).task_guid


def view(endpoint_id: str, caller=ALICE) -> dict:
    return adapter.endpoint_view(service().detail(caller, endpoint_id))


def at(hour: int, minute: int = 0, day: int = 2) -> int:
    """A moment on 2026-12-<day> in UTC, in ns."""
    return int(datetime(2026, 12, day, hour, minute, tzinfo=UTC).timestamp()) * SECOND_NS


# --- the owner's routes ------------------------------------------------------------------


def test_an_endpoint_is_created_read_patched_and_deleted(backend):
    function_id = function_with(CODE)
    tag = TagService.from_env().create(ALICE, NewTag("web", "#00ff80"))
    endpoint_id = endpoint(function_id, description="hello", tag=[tag.id], dailyLimit=5,
                           origin=["https://Example.com/"], ip=["198.51.100.7"],
                           timeLimit={"from": "22:00", "to": "06:00", "timezone": "Asia/Tokyo"})
    seen = view(endpoint_id)
    assert seen.pop("createdAt").endswith("Z")
    assert seen == {"id": endpoint_id, "functionId": function_id, "description": "hello",
                    "tags": [{"id": tag.id, "name": "web", "color": "#00ff80"}],
                    "dailyLimit": 5, "origin": ["https://example.com"], "ip": ["198.51.100.7"],
                    "timeLimit": {"from": "22:00", "to": "06:00", "timezone": "Asia/Tokyo"}}
    service().update(ALICE, endpoint_id, adapter.parse_endpoint(
        {"dailyLimit": -1, "ip": [], "timeLimit": None, "description": "x"}, patch=True))
    seen = view(endpoint_id)
    assert (seen["dailyLimit"], seen["ip"], seen["timeLimit"], seen["description"],
            seen["origin"]) == (-1, [], None, "x", ["https://example.com"])
    call(endpoint_id, origin="https://example.com")  # its counters item made
    counters = ("FUNC#" + function_id, endpoint_counters(endpoint_id))
    assert wiring.table().get(*counters)
    service().delete(ALICE, endpoint_id)
    with pytest.raises(NotFound):
        view(endpoint_id)
    assert wiring.table().get(*counters) is None  # its counters went with it
    with pytest.raises(NotFound):
        service().delete(ALICE, endpoint_id)


def test_defaults_are_no_limits(backend):
    seen = view(endpoint(function_with(CODE)))
    assert (seen["description"], seen["tags"], seen["dailyLimit"], seen["origin"], seen["ip"],
            seen["timeLimit"]) == ("", [], -1, [], [], None)


@pytest.mark.parametrize("body", [
    {"description": "x" * 257}, {"description": "caf\u00e9"}, {"description": "a\nb"},
    {"description": None}, {"description": 5},
    {"tag": "not a list"}, {"tag": [1]}, {"tag": ["x"] * 21},
    {"dailyLimit": -2}, {"dailyLimit": 1.5}, {"dailyLimit": "3"}, {"dailyLimit": True},
    {"dailyLimit": None}, {"dailyLimit": 10**10},
    {"origin": ["http://example.com"]}, {"origin": ["example.com"]},
    {"origin": ["https://example.com/path"]}, {"origin": ["https://a.com", "https://A.com/"]},
    {"origin": ["https://u@example.com"]}, {"origin": ["https://"]}, {"origin": "https://a.com"},
    {"origin": ["https://example.com:port"]}, {"origin": ["https://example.com?q=1"]},
    {"ip": ["10.0.0"]}, {"ip": ["::1"]}, {"ip": ["10.0.0.1", "10.0.0.1"]}, {"ip": ["010.0.0.1"]},
    {"ip": ["10.0.0.1/24"]}, {"ip": [7]},
    {"timeLimit": {"from": "24:00", "to": "06:00", "timezone": "UTC"}},
    {"timeLimit": {"from": "9:00", "to": "17:00", "timezone": "UTC"}},
    {"timeLimit": {"from": "09:00", "to": "17:60", "timezone": "UTC"}},
    {"timeLimit": {"from": "09:00", "to": "09:00", "timezone": "UTC"}},
    {"timeLimit": {"from": "09:00", "to": "17:00", "timezone": "Mars/Olympus"}},
    {"timeLimit": {"from": "09:00", "to": "17:00", "timezone": "../../etc/passwd"}},
    {"timeLimit": {"from": "09:00", "to": "17:00"}},
    {"timeLimit": {"from": "09:00", "to": "17:00", "timezone": "UTC", "extra": 1}},
    {"timeLimit": "09:00-17:00"},
])
def test_each_bad_field_is_a_400(body):
    for patch in (False, True):
        with pytest.raises(InvalidRequest) as refused:
            adapter.parse_endpoint(body, patch=patch)
        assert refused.value.message == "invalid endpoint" and refused.value.detail


def test_the_bounds_themselves_are_accepted():
    fields = adapter.parse_endpoint({
        "description": "~" * 256, "dailyLimit": -1, "origin": ["https://a.example:8443"],
        "ip": ["0.0.0.0", "255.255.255.255"],
        "timeLimit": {"from": "00:00", "to": "23:59", "timezone": "America/Argentina/Salta"}})
    assert fields["origin"] == ["https://a.example:8443"] and fields["daily_limit"] == -1
    assert adapter.parse_endpoint({"dailyLimit": 0})["daily_limit"] == 0


def test_unknown_tags_unknown_functions_and_empty_patches_are_refused(backend):
    function_id = function_with(CODE)
    with pytest.raises(InvalidRequest, match="unknown tag"):
        endpoint(function_id, tag=["6560f1a0ffffffffffffffff"])
    with pytest.raises(NotFound):
        endpoint("6560f1a0ffffffffffffffff")
    endpoint_id = endpoint(function_id)
    with pytest.raises(InvalidRequest, match="nothing to change"):
        service().update(ALICE, endpoint_id, adapter.parse_endpoint({}, patch=True))


def test_another_owner_s_endpoint_and_function_are_404(backend):
    function_id = function_with(CODE)
    endpoint_id = endpoint(function_id)
    endpoints = service()
    with pytest.raises(NotFound):
        endpoints.create(BOB, function_id, {})
    for action in (lambda: endpoints.detail(BOB, endpoint_id),
                   lambda: endpoints.counters(BOB, endpoint_id),
                   lambda: endpoints.update(BOB, endpoint_id, {"description": "mine"}),
                   lambda: endpoints.delete(BOB, endpoint_id),
                   lambda: endpoints.page(BOB, page=1, limit=10, function_id=function_id)):
        with pytest.raises(NotFound):
            action()
    # A refused body is a 404 too, for an endpoint or a function not the caller's.
    with pytest.raises(NotFound), endpoints.owner_first(BOB, endpoint_id):
        adapter.parse_endpoint({"dailyLimit": -5}, patch=True)
    with pytest.raises(InvalidRequest), endpoints.owner_first(ALICE, endpoint_id):
        adapter.parse_endpoint({"dailyLimit": -5}, patch=True)
    with pytest.raises(NotFound), endpoints.owner_function_first(BOB, function_id):
        adapter.parse_endpoint({"dailyLimit": -5})
    assert view(endpoint_id)["description"] == ""
    assert endpoints.page(BOB, page=1, limit=10).total == 0


def test_the_list_pages_with_its_envelope_and_filters_by_function(backend):
    first, second = function_with(CODE), function_with(CODE)
    made = [endpoint(first, description=f"e{n}") for n in range(4)] + [endpoint(second)]
    endpoints = service()

    def listed(**query) -> dict:
        params = {key: str(value) for key, value in query.items()}
        asked = parse_page_query(params)
        page = endpoints.page(ALICE, page=asked.page, limit=asked.limit,
                              function_id=asked.function_id)
        return adapter.endpoint_page_view(page, limit=asked.limit)

    everything = listed()
    assert (everything["pageCount"], everything["pageSize"], everything["totalCount"]) == (
        1, 10, 5)
    assert [item["id"] for item in everything["results"]] == made[::-1]  # newest first
    assert set(everything["results"][0]) == {"id", "description", "tags", "createdAt"}
    page2 = listed(page=2, limit=3)
    assert (page2["pageCount"], page2["totalCount"]) == (2, 5)
    assert [item["id"] for item in page2["results"]] == made[1::-1]
    assert listed(page=3, limit=3)["results"] == []
    of_first = listed(functionId=first, limit=3)
    assert (of_first["totalCount"], len(of_first["results"])) == (4, 3)
    assert [item["description"] for item in of_first["results"]] == ["e3", "e2", "e1"]
    for bad in ({"limit": "2"}, {"limit": "1000"}, {"page": "0"}, {"page": "x"}):
        with pytest.raises(InvalidRequest):
            parse_page_query(bad)


# --- public calls --------------------------------------------------------------------------


def test_a_call_runs_the_function_as_its_owner_s_task(backend, tmp_path):
    function_id = function_with(CODE)
    endpoint_id = endpoint(function_id)
    task_id = call(endpoint_id, body={"name": "Ada"})
    task = wiring.tasks().get(task_id)
    assert (task.owner, task.function_id, task.endpoint_id) == ("alice", function_id,
                                                                endpoint_id)
    assert executor(tmp_path, "cell-a").run(task_id) == "succeeded"
    answer = public().result(task_id, None)
    assert (answer.status, json.loads(answer.body)) == (200, {"hi": {"name": "Ada"},
                                                              "q": {"q": "1"}})
    counters = service().counters(ALICE, endpoint_id)
    assert counters == {"todayTasks": 1, "pendingTasks": 0, "weekTasks": 1}
    # The function's own counters count it too.
    assert wiring.function_metrics().read(function_id, now_ns())["completedTasks"] == 1


def test_an_unknown_endpoint_is_404(backend):
    for endpoint_id in ("6560f1a0ffffffffffffffff", "../ENDPOINT#x", ""):
        with pytest.raises(NotFound):
            call(endpoint_id)


@pytest.mark.slow
def test_two_hundred_concurrent_calls_against_a_limit_of_100_make_exactly_100_tasks(backend):
    function_id = function_with(CODE)
    endpoint_id = endpoint(function_id, dailyLimit=100)
    calls = 200
    barrier = threading.Barrier(calls)
    outcomes: list[str] = []
    lock = threading.Lock()
    services = public()

    def one() -> None:
        barrier.wait()
        try:
            services.call(endpoint_id, PublicCall(None, "203.0.113.10", None, {}, 0))
            outcome = "created"
        except TooManyRequests:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == ["created"] * 100 + ["refused"] * 100
    tasks, _ = wiring.tasks().list_by_function(function_id, owner="alice", limit=1000,
                                               cursor=None)
    assert len(tasks) == 100
    assert service().counters(ALICE, endpoint_id)["todayTasks"] == 100


def test_the_daily_limit_is_per_utc_day_and_refused_with_429(backend):
    endpoint_id = endpoint(function_with(CODE), dailyLimit=2)
    call(endpoint_id, now=at(23, 58, day=1))
    call(endpoint_id, now=at(23, 59, day=1))
    with pytest.raises(TooManyRequests, match="daily limit reached") as refused:
        call(endpoint_id, now=at(23, 59, day=1))
    assert refused.value.status == 429
    call(endpoint_id, now=at(0, 0, day=2))  # a new UTC day
    zero = endpoint(function_with(CODE), dailyLimit=0)
    with pytest.raises(TooManyRequests):
        call(zero)


def test_a_refused_create_gives_its_slot_back(backend):
    function_id = function_with(CODE)
    endpoint_id = endpoint(function_id, dailyLimit=1)
    from taskfn.services.functions import FunctionService

    FunctionService.from_env().toggle_pause(ALICE, function_id)  # paused: creates refused
    for _ in range(2):
        with pytest.raises(Exception, match="paused"):
            call(endpoint_id)
    FunctionService.from_env().toggle_pause(ALICE, function_id)
    call(endpoint_id)  # the slot was given back each time
    assert service().counters(ALICE, endpoint_id)["todayTasks"] == 1


def test_origin_is_checked_where_listed(backend):
    endpoint_id = endpoint(function_with(CODE), origin=["https://app.example"])
    call(endpoint_id, origin="https://app.example")
    call(endpoint_id, origin="https://APP.example/")
    for origin in (None, "", "https://evil.example", "http://app.example",
                   "https://app.example.evil.example", "null"):
        with pytest.raises(Forbidden, match="origin not allowed"):
            call(endpoint_id, origin=origin)
    call(endpoint(function_with(CODE)), origin="https://anything.example")  # no list: any


def test_ip_is_checked_where_listed(backend):
    endpoint_id = endpoint(function_with(CODE), ip=["198.51.100.7"])
    call(endpoint_id, ip="198.51.100.7")
    with pytest.raises(Forbidden, match="address not allowed"):
        call(endpoint_id, ip="198.51.100.8")


@pytest.mark.parametrize(("window", "inside", "outside"), [
    # 09:00-17:00 in Berlin (UTC+1 in December): 08:00-16:00 UTC.
    ({"from": "09:00", "to": "17:00", "timezone": "Europe/Berlin"}, [(8, 0), (15, 59)],
     [(7, 59), (16, 0), (20, 0)]),
    # A window over midnight, 22:00-06:00 UTC.
    ({"from": "22:00", "to": "06:00", "timezone": "UTC"}, [(22, 0), (23, 59), (0, 0), (5, 59)],
     [(6, 0), (12, 0), (21, 59)]),
])
def test_the_time_window_on_its_own_clock(backend, window, inside, outside):
    assert all(within(window, at(*moment)) for moment in inside)
    assert not any(within(window, at(*moment)) for moment in outside)
    endpoint_id = endpoint(function_with(CODE), timeLimit=window)
    call(endpoint_id, now=at(*inside[0]))
    with pytest.raises(Forbidden, match="outside the endpoint's time window"):
        call(endpoint_id, now=at(*outside[0]))


def test_refusals_come_before_the_count(backend):
    """An Origin, IP or window refusal spends nothing of the daily limit."""
    endpoint_id = endpoint(function_with(CODE), dailyLimit=1, origin=["https://a.example"])
    for _ in range(3):
        with pytest.raises(Forbidden):
            call(endpoint_id, origin="https://b.example")
    call(endpoint_id, origin="https://a.example")


# --- the public result -------------------------------------------------------------------


def test_the_public_result_is_readable_for_the_window_then_only_with_the_owner_s_token(
        backend, tmp_path):
    function_id = function_with(CODE)
    task_id = call(endpoint(function_id))
    with pytest.raises(NotFound, match="not finished"):
        public().result(task_id, None)
    assert executor(tmp_path, "cell-a").run(task_id) == "succeeded"
    finished = wiring.tasks().get(task_id).first_completed_at
    window = get_settings().public_result_seconds
    assert window == 300
    inside, after = finished + window * SECOND_NS, finished + window * SECOND_NS + 1
    assert public().result(task_id, None, now=inside).status == 200
    with pytest.raises(NotFound):
        public().result(task_id, None, now=after)
    alice = TokenService.from_env().create("alice", "user").token
    bob = TokenService.from_env().create("bob", "user").token
    for header in (alice, f"Bearer {alice}"):
        assert public().result(task_id, header, now=after).status == 200
    for header in (bob, "Bearer tfn_not-a-token-at-all-0000", ""):
        with pytest.raises(NotFound):
            public().result(task_id, header, now=after)


def test_a_task_not_made_by_a_public_call_is_404_without_the_owner_s_token(backend, tmp_path):
    from .test_executor import new_task

    task_id = new_task(function_with(CODE))
    assert executor(tmp_path, "cell-a").run(task_id) == "succeeded"
    with pytest.raises(NotFound, match="task not found"):
        public().result(task_id, None)
    alice = TokenService.from_env().create("alice", "user").token
    assert public().result(task_id, alice).status == 200
    with pytest.raises(NotFound):
        public().result("6560f1a0ffffffffffffffff", alice)
