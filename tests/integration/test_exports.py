"""The CSV export against moto: which tasks, in which order, with which cells; inline or
through a multipart upload (the same bytes either way); aborted when it fails. That its
memory does not grow with the rows is measured by the benchmark suite (bench/csv_export.py:
100,000 rows against 10,000), not here."""

from __future__ import annotations

import base64
import csv
import io
import json
import urllib.request
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest

from taskfn import aws, wiring
from taskfn.adapters import greencloud
from taskfn.errors import NotFound
from taskfn.lifecycle import State
from taskfn.models import FunctionRecord, TaskRecord, expiry, now_ns
from taskfn.services.exports import ExportFilter, ExportService
from taskfn.settings import get_settings
from taskfn.stores.blobs import task_key
from taskfn.stores.table import to_item
from taskfn.stores.tasks import TaskStore, function_partition
from tests.handlers.test_events import invoke, load_event
from tests.integration.helpers import ALICE, BOB

ROOT = Path(__file__).resolve().parents[2]
FID = "6560f1a0aaaaaaaaaaaaaaaa"
OTHER = "6560f1a0bbbbbbbbbbbbbbbb"
SECOND = 1_000_000_000
HEADER = ["ID", "IssuedAt", "Status", "ContentType", "Body"]
TODAY = datetime.now(UTC).date()


def day_ns(day: date, hours: float = 0) -> int:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(midnight.timestamp()) * SECOND + int(hours * 3600 * SECOND)


def function(function_id: str = FID, owner: str = "alice") -> None:
    wiring.functions().put_new(FunctionRecord(id=function_id, owner=owner, name="f",
                                              created_at=now_ns()))


_serial = [0]


def task(created: int, *, body: str | None = "ok", finished: bool = True, **fields) -> TaskRecord:
    """A task of FID's created at `created` (ns): finished with a text/plain 200 unless told."""
    _serial[0] += 1
    values = {"task_guid": f"6560f1a0{_serial[0]:016x}", "owner": "alice", "function_id": FID,
              "created_at": created, "updated_at": created,
              "expires_at": expiry(created, get_settings().task_retention_days)}
    if finished:
        values.update(state=State.COMPLETED, first_completed_at=created + SECOND,
                      response_status=200, response_headers={"Content-Type": "text/plain"},
                      response_body=body)
    return TaskRecord(**{**values, **fields})


def put(*tasks: TaskRecord) -> list[TaskRecord]:
    for one in tasks:
        assert wiring.tasks().put_new(one)
    return list(tasks)


def put_many(tasks: list[TaskRecord]) -> None:
    """BatchWriteItem in 25s, as TaskStore writes each item: fast seeding."""
    client, table = wiring.table().client, wiring.table().name
    for start in range(0, len(tasks), 25):
        pending = {table: [{"PutRequest": {"Item": to_item(TaskStore.item_for(one))}}
                           for one in tasks[start : start + 25]]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")


def service(**options) -> ExportService:
    return ExportService(wiring.table(), wiring.functions(), wiring.blobs(), get_settings(),
                         **options)


def fetched(url: str) -> tuple[bytes, Message]:
    """The body and headers (case-insensitive) of a GET, e.g. of a presigned URL."""
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read(), answer.headers


EVERY = ExportFilter()


def export_bytes(filters: ExportFilter = EVERY, *, plain: bool = False,
                 exporter: ExportService | None = None) -> bytes:
    export = (exporter or service()).export(ALICE, FID, filters,
                                            greencloud.csv_renderer(plain=plain))
    if export.location is not None:
        return fetched(export.location)[0]
    return export.body


def rows_of(data: bytes) -> list[list[str]]:
    (header, *rows) = csv.reader(io.StringIO(data.decode(), newline=""))
    assert header == HEADER
    return rows


def ids_of(data: bytes) -> list[str]:
    return [row[0] for row in rows_of(data)]


# --- which tasks -------------------------------------------------------------------------


def test_dates_are_utc_days_included_at_both_ends(backend):
    function()
    first, last = TODAY - timedelta(days=5), TODAY - timedelta(days=3)
    before = task(day_ns(first) - 1)  # the last nanosecond of the day before
    on_first = task(day_ns(first))  # its first nanosecond
    between = task(day_ns(first, 36))
    on_last = task(day_ns(last + timedelta(days=1)) - 1)  # the last day's last nanosecond
    after = task(day_ns(last + timedelta(days=1)))
    put(after, on_last, before, between, on_first)  # written out of order
    inside = [t.task_guid for t in (on_first, between, on_last)]
    assert ids_of(export_bytes(ExportFilter(since=first, until=last))) == inside  # oldest first
    assert ids_of(export_bytes(ExportFilter(since=first))) == [*inside, after.task_guid]
    assert ids_of(export_bytes(ExportFilter(until=last))) == [before.task_guid, *inside]
    assert ids_of(export_bytes(ExportFilter(since=last, until=last))) == [on_last.task_guid]
    assert len(ids_of(export_bytes())) == 5


def test_schedule_filter_keeps_only_that_schedule_s_tasks(backend):
    function()
    now = now_ns()
    scheduled = put(task(now - 3 * SECOND, schedule_id="6560f1a0eeeeeeeeeeeeeee1"),
                    task(now - 1 * SECOND, schedule_id="6560f1a0eeeeeeeeeeeeeee1"))
    put(task(now - 2 * SECOND, schedule_id="6560f1a0eeeeeeeeeeeeeee2"), task(now))
    wanted = ExportFilter(schedule_id="6560f1a0eeeeeeeeeeeeeee1")
    assert ids_of(export_bytes(wanted)) == [t.task_guid for t in scheduled]
    # the handler takes either spelling
    for name in ("scheduleId", "scheduledId"):
        answer = handler_get({name: "6560f1a0eeeeeeeeeeeeeee1"})
        assert answer["statusCode"] == 200, answer
        assert ids_of(answer["body"].encode()) == [t.task_guid for t in scheduled]


def test_expired_unreadable_and_other_functions_tasks_are_left_out(backend):
    function()
    function(OTHER)
    now = now_ns()
    kept = put(task(now - 2 * SECOND))[0]
    # past its expires_at, not yet deleted by DynamoDB's TTL
    put(task(now - SECOND, expires_at=now // SECOND - 1))
    # created before the retention (DynamoDB has not deleted it either)
    put(task(now - (get_settings().task_retention_days + 1) * 86_400 * SECOND, expires_at=0))
    put(task(now, function_id=OTHER))
    # an item on the function's index that does not read back as a task
    wiring.table().put({"PK": "TASK#6560f1a0ffffffffffffff01", "SK": "TASK",
                        "GSI2PK": function_partition(FID), "GSI2SK": f"{now:020d}#x",
                        "task_guid": "6560f1a0ffffffffffffff01", "state": "Completed"})
    assert ids_of(export_bytes()) == [kept.task_guid]


def test_order_holds_across_query_pages_and_batches_in_flight(backend):
    function()
    base = now_ns() - 3600 * SECOND
    tasks = [task(base + number * SECOND) for number in range(437)]
    put_many(list(reversed(tasks)))
    exporter = service(page_keys=70, batch_readers=3)  # pages end inside batches
    assert ids_of(export_bytes(exporter=exporter)) == [t.task_guid for t in tasks]


def test_reads_are_queries_and_projected_batch_gets_never_a_scan(backend):
    function()
    base = now_ns() - 3600 * SECOND
    put_many([task(base + number * SECOND) for number in range(250)])
    calls: list[tuple[str, dict]] = []

    def keep(params, model, **_):
        calls.append((model.name, params))

    client = aws.client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb.*", keep)
    try:
        assert len(ids_of(export_bytes())) == 250
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.*", keep)
    operations = [name for name, _ in calls]
    assert operations.count("GetItem") == 1  # the function, for its owner
    assert operations.count("Query") == 1 and operations.count("BatchGetItem") == 3
    assert set(operations) == {"GetItem", "Query", "BatchGetItem"}
    (query,) = [params for name, params in calls if name == "Query"]
    assert query["IndexName"] == "GSI2" and query["ScanIndexForward"] is True
    for name, params in calls:
        if name == "BatchGetItem":
            (request,) = params["RequestItems"].values()
            assert "response_body" in request["ExpressionAttributeNames"].values()
            assert "input_json" not in request["ExpressionAttributeNames"].values()


# --- which cells -------------------------------------------------------------------------


def test_bodies_as_base64_or_plain_and_unfinished_tasks_with_status_0(backend):
    function()
    now = now_ns()
    text = put(task(now - 4 * SECOND, body='{"x": "grüße"}',
                    response_headers={"content-type": "application/json"}, response_status=201))
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    binary = put(task(now - 3 * SECOND, body=base64.b64encode(png).decode(),
                      response_base64=True, response_headers={"Content-Type": "image/png"}))
    formula = put(task(now - 2 * SECOND, body="=HYPERLINK(\"http://evil.example\")"))
    running = put(task(now - SECOND, finished=False, state=State.RUNNING, cell_id="c",
                       started_at=now))
    cancelled = put(task(now, body=None, response_status=0, response_headers={},
                         failed=True, failure_reason="cancelled"))
    issued = datetime.fromtimestamp((now - 4 * SECOND) // SECOND, UTC)
    as_base64 = rows_of(export_bytes())
    assert as_base64[0] == [text[0].task_guid, issued.strftime("%Y-%m-%dT%H:%M:%SZ"), "201",
                            "application/json",
                            base64.b64encode('{"x": "grüße"}'.encode()).decode()]
    assert base64.b64decode(as_base64[1][4]) == png and as_base64[1][3] == "image/png"
    assert as_base64[3] == [running[0].task_guid, as_base64[3][1], "0", "", ""]
    plain = rows_of(export_bytes(plain=True))
    assert plain[0][4] == '{"x": "grüße"}'
    assert plain[1][4] == as_base64[1][4]  # not UTF-8: base64 even when plain
    assert plain[2][4] == "'=HYPERLINK(\"http://evil.example\")"
    assert (plain[4][2], plain[4][3], json.loads(plain[4][4])) == (
        "500", "application/json", {"errorType": "TaskFailed", "errorMessage": "cancelled"})
    assert [row[0] for row in plain] == [t[0].task_guid for t in
                                         (text, binary, formula, running, cancelled)]


def test_a_body_kept_in_s3_is_fetched_and_one_s3_removed_is_empty(backend):
    function()
    now = now_ns()
    kept_key, gone_key = task_key("6560f1a0cccccccccccccc01", "result"), task_key("x", "gone")
    wiring.blobs().put(kept_key, "large résumé".encode(), "text/plain")
    put(task(now - SECOND, body=None, response_key=kept_key),
        task(now, body=None, response_key=gone_key))
    rows = rows_of(export_bytes(plain=True))
    assert [row[4] for row in rows] == ["large résumé", ""]
    assert [row[2] for row in rows] == ["200", "200"]


def test_many_bodies_in_s3_keep_their_rows_order(backend):
    function()
    base = now_ns() - 600 * SECOND
    tasks = []
    for number in range(60):
        key = task_key(f"6560f1a0cccccccccccc{number:04x}", "result")
        if number % 3:
            wiring.blobs().put(key, f"s3 body {number}".encode(), "text/plain")
            tasks.append(task(base + number * SECOND, body=None, response_key=key))
        else:
            tasks.append(task(base + number * SECOND, body=f"inline {number}"))
    put_many(tasks)
    rows = rows_of(export_bytes(plain=True, exporter=service(body_readers=2)))
    assert [row[4] for row in rows] == [
        f"s3 body {n}" if n % 3 else f"inline {n}" for n in range(60)]


def test_another_owner_s_function_and_unknown_ones_are_not_found(backend):
    function(owner="bob")
    put(task(now_ns(), owner="bob"))
    for caller, function_id in ((ALICE, FID), (ALICE, OTHER), (ALICE, "not-an-id"),
                                (BOB, OTHER)):
        with pytest.raises(NotFound):
            service().export(caller, function_id, ExportFilter(),
                             greencloud.csv_renderer(plain=False))
    assert service().export(BOB, FID, ExportFilter(),
                            greencloud.csv_renderer(plain=False)).rows == 1


# --- inline or uploaded ------------------------------------------------------------------


@pytest.fixture
def small_parts(monkeypatch):
    """moto with S3's 5 MiB part minimum lowered, so that tests upload many small parts."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)


def multipart_uploads() -> list[dict]:
    s3 = aws.client("s3")
    return s3.list_multipart_uploads(Bucket=get_settings().bucket_name).get("Uploads", [])


@pytest.mark.slow
def test_a_large_export_is_uploaded_in_parts_and_is_the_same_bytes(backend, small_parts):
    function()
    base = now_ns() - 3600 * SECOND
    put_many([task(base + n * SECOND, body=f"row {n} " + "x" * 200) for n in range(300)])
    inline = export_bytes(plain=True)
    assert len(inline) > 60_000
    exporter = service(inline_max_bytes=1024, part_bytes=8192)
    export = exporter.export(ALICE, FID, ExportFilter(), greencloud.csv_renderer(plain=True))
    assert export.body is None and export.rows == 300 and export.size == len(inline)
    data, headers = fetched(export.location)
    assert data == inline
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="{FID}.csv"'
    (key,) = [o["Key"] for o in aws.client("s3").list_objects_v2(
        Bucket=get_settings().bucket_name, Prefix="exports/")["Contents"]]
    assert key.startswith(f"exports/{FID}/") and key.endswith(".csv")
    s3, bucket = aws.client("s3"), get_settings().bucket_name
    parts = s3.head_object(Bucket=bucket, Key=key, PartNumber=1)["PartsCount"]
    sizes = [s3.head_object(Bucket=bucket, Key=key, PartNumber=n)["ContentLength"]
             for n in range(1, parts + 1)]
    assert parts >= 3 and sum(sizes) == len(inline)
    assert min(sizes[:-1]) >= 8192  # every part but the last at least the part size
    assert multipart_uploads() == []


def test_an_export_between_the_inline_bound_and_a_part_is_one_part(backend):
    function()
    put_many([task(now_ns() - n * SECOND, body="y" * 100) for n in range(40)])
    inline = export_bytes()
    export = service(inline_max_bytes=1000).export(ALICE, FID, ExportFilter(),
                                                   greencloud.csv_renderer(plain=False))
    assert export.location and fetched(export.location)[0] == inline


def test_a_small_export_touches_no_s3(backend):
    function()
    put(task(now_ns()))
    calls: list[str] = []
    s3 = aws.client("s3")
    s3.meta.events.register("before-send.s3.*", lambda event_name, **_: calls.append(
        event_name))
    export = service().export(ALICE, FID, ExportFilter(), greencloud.csv_renderer(plain=True))
    assert export.location is None and rows_of(export.body)[0][4] == "ok"
    assert calls == []


def test_an_export_that_fails_after_its_first_part_is_aborted(backend, small_parts):
    function()
    base = now_ns() - 3600 * SECOND
    put_many([task(base + n * SECOND, body="z" * 300) for n in range(300)])
    plain = greencloud.csv_renderer(plain=True)

    def failing(rows):
        for number, chunk in enumerate(plain(rows)):
            if number == 2:
                raise RuntimeError("rendering failed")
            yield chunk

    exporter = service(inline_max_bytes=1024, part_bytes=4096)
    sent: list[str] = []
    s3 = aws.client("s3")
    s3.meta.events.register("before-send.s3.*", lambda event_name, **_: sent.append(
        event_name.rsplit(".", 1)[1]))
    with pytest.raises(RuntimeError, match="rendering failed"):
        exporter.export(ALICE, FID, ExportFilter(), failing)
    assert sent[0] == "CreateMultipartUpload" and "UploadPart" in sent
    assert sent[-1] == "AbortMultipartUpload"
    assert multipart_uploads() == []
    listed = aws.client("s3").list_objects_v2(Bucket=get_settings().bucket_name,
                                              Prefix="exports/")
    assert listed.get("KeyCount", 0) == 0


def test_an_export_that_cannot_end_in_the_request_s_time_is_a_413_not_a_timeout(
        backend, small_parts):
    from taskfn.errors import PayloadTooLarge
    from taskfn.services.exports import FINISH_MARGIN_S

    function()
    base = now_ns() - 3600 * SECOND
    put_many([task(base + n * SECOND, body="w" * 300) for n in range(400)])
    plain = greencloud.csv_renderer(plain=True)
    clock = {"now": 0.0}
    exporter = service(inline_max_bytes=1024, part_bytes=4096, page_keys=100)

    def slow(rows):  # rendering that takes a second a chunk, on a clock of its own
        for chunk in plain(rows):
            clock["now"] += 1
            yield chunk

    import taskfn.services.exports as exports

    real = exports.time.monotonic
    try:
        exports.time.monotonic = lambda: clock["now"]
        with pytest.raises(PayloadTooLarge) as raised:
            exporter.export(ALICE, FID, ExportFilter(), slow, remaining_s=FINISH_MARGIN_S + 2)
    finally:
        exports.time.monotonic = real
    assert "narrow dateSince and dateUntil" in raised.value.detail
    assert multipart_uploads() == []  # the parts uploaded before it are dropped
    # with time enough, the same export ends
    export = exporter.export(ALICE, FID, ExportFilter(), plain, remaining_s=600)
    assert export.rows == 400


# --- through the handler -------------------------------------------------------------------


def handler_get(params: dict[str, str] | None, *, user: str = "alice") -> dict:
    event = load_event("ExportTasksCsvFunction")
    event["queryStringParameters"] = params
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    event["requestContext"]["authorizer"]["lambda"]["user"] = user
    return invoke("ExportTasksCsvFunction", event)


def test_the_handler_answers_an_attachment_or_a_303(backend, monkeypatch):
    function()
    put(task(now_ns(), body="hello"))
    answer = handler_get({"showPlain": "TRUE"})
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["headers"]["Content-Disposition"] == f'attachment; filename="{FID}.csv"'
    assert rows_of(answer["body"].encode())[0][4] == "hello"
    from tests.handlers.test_events import handler_module

    monkeypatch.setattr(handler_module("ExportTasksCsvFunction").exports,
                        "inline_max_bytes", 10)
    redirected = handler_get(None)
    assert redirected["statusCode"] == 303
    assert redirected["headers"]["Cache-Control"] == "no-store"
    data, _ = fetched(redirected["headers"]["Location"])
    assert rows_of(data)[0][4] == base64.b64encode(b"hello").decode()


def test_the_handler_answers_bad_queries_400_and_others_functions_404(backend):
    function()
    for params in ({"showPlain": "maybe"}, {"dateSince": "2026-1-1"},
                   {"scheduleId": "a", "scheduledId": "b"},
                   {"dateSince": "2026-12-02", "dateUntil": "2026-12-01"}):
        answer = handler_get(params)
        assert answer["statusCode"] == 400, (params, answer)
        assert json.loads(answer["body"])["message"]
    for params in (None, {"scheduleId": "a", "scheduledId": "b"}):
        # another owner's function is not found, whatever the query says
        answer = handler_get(params, user="mallory")
        assert answer["statusCode"] == 404, (params, answer)
        assert json.loads(answer["body"]) == {"message": "function not found"}


def test_the_caller_is_known_before_the_query_is_read(backend):
    function()
    event = load_event("ExportTasksCsvFunction")
    event["queryStringParameters"] = {"showPlain": "maybe"}
    event["requestContext"]["authorizer"] = {"lambda": {"user": "", "scope": ""}}
    assert invoke("ExportTasksCsvFunction", event)["statusCode"] == 401
