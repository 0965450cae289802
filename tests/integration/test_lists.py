"""GreenCloud's lists against moto (issue 10): GET /v1/build/list in numbered pages with its
total, and GET /v1/task/list narrowed by functionId and status. Every AWS call the lists
make is recorded: Query, BatchGetItem and GetItem only (never a Scan), one Query a task page.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskfn import wiring
from taskfn.adapters.greencloud import task_list_item
from taskfn.errors import InvalidRequest, NotFound
from taskfn.lifecycle import SECOND_NS, State
from taskfn.local.gateway import Router
from taskfn.models import (
    DAY_S,
    BuildRecord,
    BuildStatus,
    FunctionRecord,
    TaskRecord,
    TaskSummary,
    now_ns,
)
from taskfn.services.builds import LIST_DEPTH_MAX, BuildService
from taskfn.services.tasks import TaskService
from taskfn.settings import get_settings
from taskfn.stores.table import Filter, Table, encode_cursor, time_key, to_item
from taskfn.stores.tasks import status_matches
from tests.handlers.test_events import (  # noqa: F401 - seeded is a fixture
    FID,
    TEMPLATE,
    invoke,
    load_event,
    seeded,
)

from .helpers import ALICE, BOB

F1, F2, BOBS = "6560f1a0000000000000f001", "6560f1a0000000000000f002", "6560f1a0000000000000f0b0"
READS = {"Query", "BatchGetItem", "GetItem"}


def operations(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [operation for operation, _ in calls]


def function(function_id: str, owner: str = "alice") -> None:
    assert wiring.functions().put_new(FunctionRecord(id=function_id, owner=owner, name="f",
                                                     created_at=now_ns()))


def answer_of(function_id: str, params: dict[str, str] | None, user: str = "alice"
              ) -> tuple[int, Any, dict[str, str]]:
    """The handler's answer to a GET with these query parameters: status, body, headers."""
    event = load_event(function_id)
    event["queryStringParameters"] = params
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    event["requestContext"]["authorizer"]["lambda"]["user"] = user
    answer = invoke(function_id, event)
    return answer["statusCode"], json.loads(answer["body"]), answer.get("headers") or {}


def assert_greencloud_error(status: int, body: Any, expected: int) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and body["message"] and set(body) <= {"message", "detail"}


# --- GET /v1/build/list ------------------------------------------------------------------


@pytest.fixture
def builds(backend) -> dict[str, list[str]]:
    """Alice's builds: 7 of F1 and 3 of F2, interleaved in time; 2 of Bob's function. Each
    list newest first."""
    function(F1)
    function(F2)
    function(BOBS, owner="bob")
    store, now = wiring.builds(), now_ns()
    made: dict[str, list[str]] = {F1: [], F2: [], BOBS: []}
    plan = [F1, F2, F1, F1, BOBS, F1, F2, F1, F1, BOBS, F2, F1]
    for age, function_id in enumerate(plan):
        build_id = f"6560f1a0{age:016x}"
        owner = "bob" if function_id == BOBS else "alice"
        status = BuildStatus.FAILED if age % 4 == 3 else BuildStatus.SUCCESS
        store.put(BuildRecord(id=build_id, owner=owner, function_id=function_id,
                              status=status, created_at=now - age * SECOND_NS))
        made[function_id].append(build_id)
    return made


def alices(builds: dict[str, list[str]]) -> list[str]:
    """Alice's build ids newest first (their ids count up with age)."""
    return sorted(builds[F1] + builds[F2])


def test_build_pages_cover_the_list_newest_first_with_its_counts(builds):
    everything = alices(builds)
    seen = []
    for page in (1, 2, 3, 4):
        status, body, _ = answer_of("ListBuildsFunction", {"page": str(page), "limit": "3"})
        assert status == 200, body
        assert (body["pageCount"], body["pageSize"], body["totalCount"]) == (4, 3, 10)
        assert len(body["results"]) == (3 if page < 4 else 1)
        seen += [result["id"] for result in body["results"]]
        times = [int(result["createdAt"]) for result in body["results"]]
        assert times == sorted(times, reverse=True)
    assert seen == everything
    status, past, _ = answer_of("ListBuildsFunction", {"page": "5", "limit": "3"})
    assert (status, past) == (200, {"pageCount": 4, "pageSize": 3, "totalCount": 10,
                                    "results": []})


def test_build_list_items_carry_greencloud_fields(builds):
    status, body, _ = answer_of("ListBuildsFunction", None)  # page 1 of 10: the defaults
    assert status == 200 and (body["pageSize"], body["totalCount"]) == (10, 10)
    newest = body["results"][0]
    record = wiring.builds().get(newest["id"])
    assert newest == {"id": record.id, "functionId": F1, "status": "SUCCESS",
                      "arch": ["amd64"], "createdAt": str(record.created_at // SECOND_NS)}
    assert {r["status"] for r in body["results"]} == {"SUCCESS", "FAILED"}


def test_build_list_of_one_function(builds):
    for function_id, count in ((F1, 7), (F2, 3)):
        status, body, _ = answer_of("ListBuildsFunction",
                                    {"functionId": function_id, "limit": "5"})
        assert status == 200, body
        assert (body["totalCount"], body["pageCount"]) == (count, -(-count // 5))
        assert [r["id"] for r in body["results"]] == sorted(builds[function_id])[:5]
        assert {r["functionId"] for r in body["results"]} == {function_id}
    status, second, _ = answer_of("ListBuildsFunction", {"functionId": F1, "limit": "5",
                                                         "page": "2"})
    assert [r["id"] for r in second["results"]] == sorted(builds[F1])[5:]


@pytest.mark.parametrize("function_id", [BOBS, "6560f1a0000000000000dead", "not-an-id", ""])
def test_another_owners_or_an_unknown_function_is_404(builds, function_id):
    status, body, _ = answer_of("ListBuildsFunction", {"functionId": function_id})
    assert_greencloud_error(status, body, 404)
    assert body["message"] == "function not found"


def test_bob_sees_his_builds_only(builds):
    status, body, _ = answer_of("ListBuildsFunction", None, user="bob")
    assert status == 200 and body["totalCount"] == 2
    assert [r["id"] for r in body["results"]] == sorted(builds[BOBS])


BAD_PAGES = [
    {"page": "0"}, {"page": "-1"}, {"page": "abc"}, {"page": "1.5"}, {"page": ""},
    {"page": " 1"}, {"page": "1_0"}, {"page": "٣"}, {"page": "9" * 5000},
    {"limit": "2"}, {"limit": "1000"}, {"limit": "ten"}, {"limit": ""}, {"limit": "+5"},
]


def test_build_page_bounds_are_400(builds):
    for params in BAD_PAGES:
        status, body, _ = answer_of("ListBuildsFunction", params)
        assert_greencloud_error(status, body, 400)
        assert next(iter(params)) in body["message"], params
    status, body, _ = answer_of("ListBuildsFunction", {"page": "4", "limit": "3"})
    assert (status, len(body["results"])) == (200, 1)  # the bounds themselves are fine
    status, body, _ = answer_of("ListBuildsFunction", {"page": "1", "limit": "999"})
    assert (status, len(body["results"])) == (200, 10)


def test_a_page_too_deep_is_400_before_any_read(builds, aws_calls):
    aws_calls.clear()
    status, body, _ = answer_of("ListBuildsFunction", {"page": "11", "limit": "999"})
    assert_greencloud_error(status, body, 400)
    assert str(LIST_DEPTH_MAX) in body["message"]
    assert aws_calls == []
    # The deepest page allowed is listed (past the end here, with the right counts).
    status, body, _ = answer_of("ListBuildsFunction", {"page": "10", "limit": "999"})
    assert (status, body["totalCount"], body["results"]) == (200, 10, [])


def test_a_build_page_reads_keys_to_it_counts_the_rest_and_fetches_only_its_builds(
        builds, aws_calls):
    service = BuildService.from_env()
    aws_calls.clear()
    page = service.list(ALICE, page=2, limit=3)
    assert [b.id for b in page.builds] == alices(builds)[3:6] and page.total == 10
    assert operations(aws_calls) == ["Query", "Query", "BatchGetItem"]
    (_, head), (_, count), (_, batch) = aws_calls
    assert (head["IndexName"], head["Limit"], head["ScanIndexForward"]) == ("GSI1", 6, False)
    assert "ProjectionExpression" in head and "Select" not in head
    assert count["Select"] == "COUNT" and count["ExclusiveStartKey"]
    (request,) = batch["RequestItems"].values()
    assert [key["PK"]["S"] for key in request["Keys"]] == [
        f"BUILD#{build_id}" for build_id in alices(builds)[3:6]]
    # The last page ends within the keys it reads: one Query for keys and count.
    aws_calls.clear()
    assert [b.id for b in service.list(ALICE, page=4, limit=3).builds] == alices(builds)[9:]
    assert operations(aws_calls) == ["Query", "BatchGetItem"]
    # One function's: its item, then its partition of the keys-only index.
    aws_calls.clear()
    assert service.list(ALICE, page=1, limit=3, function_id=F2).total == 3
    assert operations(aws_calls) == ["GetItem", "Query", "BatchGetItem"]
    assert aws_calls[1][1]["IndexName"] == "GSI2"


@pytest.mark.usefixtures("seeded")
def test_the_sample_event_lists_the_sample_function_s_builds():
    answer = invoke("ListBuildsFunction", load_event("ListBuildsFunction"))
    assert answer["statusCode"] == 200, answer
    body = json.loads(answer["body"])
    assert (body["pageCount"], body["pageSize"], body["totalCount"]) == (1, 10, 2)
    assert {result["functionId"] for result in body["results"]} == {FID}


def test_the_gateway_routes_the_static_segment_before_the_build_id():
    router = Router(TEMPLATE.routes)
    route, params = router.match("GET", "/v1/build/list")
    assert (route.function_id, params) == ("ListBuildsFunction", {})
    route, params = router.match("GET", "/v1/build/6560f1a0bbbbbbbbbbbbbbbb")
    assert (route.function_id, params) == ("GetBuildFunction", {"id": "6560f1a0bbbbbbbbbbbbbbbb"})


class PagedClient:
    """DynamoDB's Query paging, for a partition larger than what one answer carries: at most
    `per_answer` entries an answer (its 1 MB), and a LastEvaluatedKey while entries remain."""

    def __init__(self, count: int, per_answer: int):
        self.entries = [{"PK": f"BUILD#{n:04d}", "SK": "BUILD"} for n in range(count)]
        self.per_answer = per_answer
        self.calls: list[dict[str, Any]] = []

    def query(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        start = 0
        if "ExclusiveStartKey" in params:
            start = int(params["ExclusiveStartKey"]["PK"]["S"].split("#")[1]) + 1
        end = min(start + min(self.per_answer, params.get("Limit", 10**9)), len(self.entries))
        chunk = self.entries[start:end]
        answer: dict[str, Any] = {"Count": len(chunk)}
        if params.get("Select") != "COUNT":
            answer["Items"] = [to_item(entry) for entry in chunk]
        if end < len(self.entries):
            answer["LastEvaluatedKey"] = to_item(self.entries[end - 1])
        return answer


def test_head_and_count_follows_answers_cut_short_by_their_size():
    client = PagedClient(count=25, per_answer=4)
    keys, total = Table(client, "t").head_and_count("GSI1", "OWNER#alice#BUILD", first=10)
    assert [key["PK"] for key in keys] == [f"BUILD#{n:04d}" for n in range(10)]
    assert total == 25
    heads = [call for call in client.calls if call.get("Select") != "COUNT"]
    assert [call["Limit"] for call in heads] == [10, 6, 2]
    counts = [call for call in client.calls if call.get("Select") == "COUNT"]
    assert len(counts) == 4 and all("Limit" not in call for call in counts)  # 15 left, 4 a MB
    keys, total = Table(PagedClient(3, 4), "t").head_and_count("GSI1", "P", first=10)
    assert (len(keys), total) == (3, 3)


# --- GET /v1/task/list filters ------------------------------------------------------------

# Each of alice's tasks of F1: its outcome, then what the list shows (status) and its word.
OUTCOMES: dict[str, tuple[dict[str, Any], int, str]] = {
    "pending": ({}, 0, "pending"),
    "running": ({"state": State.RUNNING, "started_at": 1}, 0, "pending"),
    "ok200": ({"response_status": 200}, 200, "succeeded"),
    "ok404": ({"response_status": 404}, 404, "succeeded"),
    "answered500": ({"response_status": 500}, 500, "succeeded"),
    "raised500": ({"response_status": 500, "failed": True}, 500, "failed"),
    "cancelled": ({"failed": True, "failure_reason": "cancelled"}, 500, "failed"),
    "cell_ok": ({"result": "42"}, 200, "succeeded"),  # a Cell API success: no HTTP answer
}


def guid(name: str, function_id: str) -> str:
    return f"{function_id[-4:]}-{name}"


def put_task(task_id: str, *, function_id: str, age_s: float, owner: str = "alice",
             **outcome: Any) -> None:
    created = now_ns() - int(age_s * SECOND_NS)
    fields: dict[str, Any] = {"state": State.PENDING, **outcome}
    if {"response_status", "failed", "result"} & outcome.keys():
        fields.update(state=State.COMPLETED, first_completed_at=created + 1)
    assert wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner=owner,
                                             function_id=function_id, created_at=created,
                                             updated_at=created, **fields))


@pytest.fixture
def tasks(backend) -> list[str]:
    """Alice's tasks newest first: F1's with every outcome (10 s to 80 s old), two of F2's
    around them; past the retention, one of F1's; Bob's, one of his function and one naming
    alice's F1."""
    function(F1)
    function(F2)
    function(BOBS, owner="bob")
    put_task(guid("ok200", F2), function_id=F2, age_s=5, response_status=200)
    for position, (name, (outcome, _, _)) in enumerate(OUTCOMES.items()):
        put_task(guid(name, F1), function_id=F1, age_s=10 * (position + 1), **outcome)
    put_task(guid("pending", F2), function_id=F2, age_s=10 * len(OUTCOMES) + 5)
    days = get_settings().task_retention_days
    put_task(guid("old", F1), function_id=F1, age_s=(days + 1) * DAY_S, response_status=200)
    put_task(guid("ok200", BOBS), function_id=BOBS, age_s=1, owner="bob",
             response_status=200)
    put_task("bobs-in-f1", function_id=F1, age_s=2, owner="bob", response_status=200)
    return [guid("ok200", F2), *(guid(name, F1) for name in OUTCOMES), guid("pending", F2)]


def listed(caller=ALICE, *, limit: int = 100, **filters: Any) -> tuple[list[str], list[int]]:
    """Every page of a listing: the ids in order, and each page's size."""
    service, ids, sizes, cursor = TaskService.from_env(), [], [], None
    while True:
        page, cursor = service.list(caller, limit=limit, cursor=cursor, **filters)
        ids += [task.task_guid for task in page]
        sizes.append(len(page))
        if cursor is None:
            return ids, sizes


def expected(everything: list[str], status: int | str | None, function_id: str | None
             ) -> list[str]:
    def shown(task_id: str) -> tuple[int, str]:
        function_part, name = task_id.split("-", 1)
        if function_part == F2[-4:]:
            return (200, "succeeded") if name == "ok200" else (0, "pending")
        return OUTCOMES[name][1:]

    return [task_id for task_id in everything
            if (function_id is None or task_id.startswith(function_id[-4:]))
            and (status is None or status in shown(task_id))]


FILTERS = [None, 0, "pending", "succeeded", "failed", 200, 404, 500, 201]


def test_task_list_filters_by_function_and_status(tasks):
    for function_id in (None, F1, F2):
        for status in FILTERS:
            ids, _ = listed(function_id=function_id, status=status)
            assert ids == expected(tasks, status, function_id), (function_id, status)
            if status is not None:  # the same, a page at a time
                assert listed(limit=2, function_id=function_id, status=status)[0] == ids


@pytest.mark.parametrize("function_id", [None, F1])
def test_task_pages_continue_with_one_query_each_and_no_scan(tasks, aws_calls, function_id):
    aws_calls.clear()
    ids, sizes = listed(limit=2, function_id=function_id)
    assert ids == expected(tasks, None, function_id)
    ops = operations(aws_calls)
    assert set(ops) <= READS
    assert ops.count("Query") == len(sizes)
    if function_id:  # each page: the function's item, its keys, its tasks by key
        assert ops == ["GetItem", "Query", "BatchGetItem"] * (len(sizes) - 1) + [
            "GetItem", "Query"] + (["BatchGetItem"] if sizes[-1] else [])
        assert {params["IndexName"] for op, params in aws_calls if op == "Query"} == {"GSI2"}
    else:
        assert ops == ["Query"] * len(sizes)


def test_a_filtered_page_may_hold_fewer_than_its_limit_with_a_cursor(tasks, aws_calls):
    for function_id in (None, F1):
        aws_calls.clear()
        ids, sizes = listed(limit=2, function_id=function_id, status="failed")
        assert ids == [guid("raised500", F1), guid("cancelled", F1)]
        assert min(sizes[:-1]) < 2  # a short page, not the last
        assert operations(aws_calls).count("Query") == len(sizes)
        assert set(operations(aws_calls)) <= READS


def test_a_cursor_belongs_to_its_own_listing(tasks):
    service = TaskService.from_env()
    _, f1_cursor = service.list(ALICE, limit=1, cursor=None, function_id=F1)
    _, owner_cursor = service.list(ALICE, limit=1, cursor=None)
    assert f1_cursor and owner_cursor
    for cursor, function_id in ((f1_cursor, F2), (f1_cursor, None), (owner_cursor, F1)):
        with pytest.raises(InvalidRequest, match="invalid cursor"):
            service.list(ALICE, limit=1, cursor=cursor, function_id=function_id)
    # Bob may not page through alice's function with a cursor of it: not his (404).
    with pytest.raises(NotFound):
        service.list(BOB, limit=1, cursor=f1_cursor, function_id=F1)


def test_a_cursor_from_another_functions_listing_is_a_400_over_http(tasks):
    _, _, headers = answer_of("ListTasksFunction", {"functionId": F1, "limit": "1"})
    cursor = headers["X-Next-Cursor"]
    status, body, _ = answer_of("ListTasksFunction", {"functionId": F2, "cursor": cursor})
    assert_greencloud_error(status, body, 400)
    status, body, _ = answer_of("ListTasksFunction", {"functionId": F1, "cursor": cursor,
                                                      "status": "failed"})
    assert status == 200 and [t["id"] for t in body] == [guid("raised500", F1),
                                                          guid("cancelled", F1)]


def test_a_cursor_behind_the_retention_ends_the_listing_without_a_read(tasks, aws_calls):
    """A cursor whose entry has since aged past the retention: DynamoDB would refuse it as
    a start outside the key condition; the listing has simply ended."""
    old = guid("old", F1)
    created = wiring.tasks().get(old).created_at
    keys = {"PK": f"TASK#{old}", "SK": "TASK"}
    aged = {
        None: {**keys, "GSI1PK": "OWNER#alice#TASK", "GSI1SK": time_key(created, old)},
        F1: {**keys, "GSI2PK": f"FUNC#{F1}#TASK", "GSI2SK": time_key(created, old)},
    }
    service = TaskService.from_env()
    for function_id, key in aged.items():
        aws_calls.clear()
        cursor = encode_cursor(to_item(key))
        assert service.list(ALICE, limit=5, cursor=cursor, function_id=function_id) == ([],
                                                                                         None)
        assert "Query" not in operations(aws_calls)
    ahead = {**aged[None], "GSI1SK": "99999999999999999999#~~"}  # no task is from then
    with pytest.raises(InvalidRequest):
        service.list(ALICE, limit=5, cursor=encode_cursor(to_item(ahead)))
    extra = {**aged[None], "GSI1SK": time_key(now_ns(), old), "owner": "alice"}
    with pytest.raises(InvalidRequest):  # not a key DynamoDB would take
        service.list(ALICE, limit=5, cursor=encode_cursor(to_item(extra)))


def test_tasks_past_the_retention_are_listed_by_no_filter(tasks):
    for function_id in (None, F1):
        for status in (None, 200, "succeeded"):
            assert guid("old", F1) not in listed(function_id=function_id, status=status)[0]


def test_a_task_of_another_owner_naming_my_function_is_not_mine(tasks):
    assert "bobs-in-f1" not in listed(function_id=F1)[0]
    assert "bobs-in-f1" in listed(BOB)[0]


@pytest.mark.parametrize("function_id", [BOBS, "6560f1a0000000000000dead", "nope", ""])
def test_task_list_of_another_owners_or_an_unknown_function_is_404(tasks, function_id):
    status, body, _ = answer_of("ListTasksFunction", {"functionId": function_id})
    assert_greencloud_error(status, body, 404)


def test_task_status_filters_not_understood_are_400(tasks):
    for raw in ("abc", "99", "600", "-1", " 200", "200 ", "2000", "", "0200", "1e2", "pend",
                "done", "٢٠٠", "true", " failed"):
        status, body, _ = answer_of("ListTasksFunction", {"status": raw})
        assert_greencloud_error(status, body, 400)
        assert "status" in body["message"], raw


def test_task_list_filters_over_http(tasks):
    for params, want in (
            ({"status": "FAILED"}, expected(tasks, "failed", None)),
            ({"status": "000"}, expected(tasks, 0, None)),
            ({"status": "500", "functionId": F1}, expected(tasks, 500, F1)),
            ({"status": "succeeded", "functionId": F2}, [guid("ok200", F2)])):
        status, body, _ = answer_of("ListTasksFunction", params)
        assert status == 200, body
        assert [task["id"] for task in body] == want
    status, body, _ = answer_of("ListTasksFunction", {"status": "404", "functionId": F1})
    assert body == [{"id": guid("ok404", F1), "issued": body[0]["issued"], "progress": 0,
                     "status": 404}]


def test_status_matching_agrees_with_the_list_s_status_field():
    """The filter of tasks read by key says what the list would show."""
    for outcome, shown, word in OUTCOMES.values():
        done = bool({"response_status", "failed", "result"} & outcome.keys())
        task = TaskSummary(task_guid="t", created_at=1, first_completed_at=2 if done else 0,
                           response_status=outcome.get("response_status", 0),
                           failed=outcome.get("failed", False))
        assert task_list_item(task)["status"] == shown
        for status in (0, 200, 404, 500, "pending", "succeeded", "failed"):
            assert status_matches(task, status) == (status in (shown, word)), (outcome, status)


def test_a_filter_may_not_reuse_the_key_condition_s_placeholders(backend):
    clash = Filter("#pk = :pk", {"#pk": "owner"}, {":pk": "x"})
    with pytest.raises(ValueError, match="clash"):
        wiring.table().query("GSI1", "OWNER#alice#TASK", limit=1, where=clash)
