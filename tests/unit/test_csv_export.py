"""The CSV export's rendering and query, without AWS: cells a spreadsheet would run come out
escaped, columns in GreenCloud's order and formats, RFC 4180 quoting, and every bad query
parameter a 400."""

from __future__ import annotations

import base64
import csv
import io
from datetime import date

import pytest

from taskfn.adapters import greencloud
from taskfn.errors import InvalidRequest
from taskfn.services.exports import (
    ExportedResponse,
    ExportFilter,
    ExportRow,
    ExportService,
    day_start_ns,
    key_range,
)
from taskfn.stores.table import time_key

ISSUED = 1_796_194_862_123_456_789  # 2026-12-02T07:01:02.123456789Z
TID = "6560f1a0cccccccccccccccc"


def rendered(rows: list[ExportRow], *, plain: bool = False) -> bytes:
    return b"".join(greencloud.csv_renderer(plain=plain)(rows))


def parsed(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def finished(body: bytes, content_type: str = "text/plain", status: int = 200) -> ExportRow:
    return ExportRow(TID, ISSUED, ExportedResponse(status, content_type, body))


@pytest.mark.parametrize("attack", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx",
                                    '=HYPERLINK("http://evil.example","x")'])
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(attack):
    assert greencloud.csv_cell(attack) == "'" + attack
    (_, row) = parsed(rendered([finished(attack.encode())], plain=True))
    assert row[4] == "'" + attack


@pytest.mark.parametrize("value", ["", "plain", "'=already quoted", " =space first", "1-2",
                                   "a=b"])
def test_other_cells_are_left_as_they_are(value):
    assert greencloud.csv_cell(value) == value


def test_every_column_is_escaped_not_only_the_body():
    # base64 of b"\xfb\xef" is "++8=", and a Cell API guid may start with "-".
    row = ExportRow("-guid", ISSUED, ExportedResponse(200, "=cmd|' /C calc'!A0", b"\xfb\xef"))
    (_, cells) = parsed(rendered([row]))
    assert cells == ["'-guid", "2026-12-02T07:01:02Z", "200", "'=cmd|' /C calc'!A0", "'++8="]


def test_the_header_and_the_columns_are_in_greencloud_s_order_and_formats():
    rows = [finished(b'{"a": 1}', "application/json", 201),
            ExportRow("6560f1a0dddddddddddddddd", ISSUED + 10**9, None)]
    data = rendered(rows)
    assert parsed(data) == [
        ["ID", "IssuedAt", "Status", "ContentType", "Body"],
        [TID, "2026-12-02T07:01:02Z", "201", "application/json",
         base64.b64encode(b'{"a": 1}').decode()],
        # unfinished: Status 0, no content type, no body (as the task list's status)
        ["6560f1a0dddddddddddddddd", "2026-12-02T07:01:03Z", "0", "", ""],
    ]
    assert data.startswith(b"ID,IssuedAt,Status,ContentType,Body\r\n")  # RFC 4180: CRLF


def test_show_plain_gives_the_text_and_keeps_non_utf8_bodies_base64():
    text, binary = "grüße, \"quoted\"\nline two".encode(), b"\x89PNG\r\n\x1a\n\xff"
    data = rendered([finished(text), finished(binary, "image/png")], plain=True)
    (_, first, second) = parsed(data)
    assert first[4] == text.decode()
    assert second[4] == base64.b64encode(binary).decode()
    # RFC 4180: a cell with a quote, comma or line break is quoted, its quotes doubled
    assert '"grüße, ""quoted""\nline two"' in data.decode()
    (_, as_base64, _) = parsed(rendered([finished(text), finished(binary)]))
    assert base64.b64decode(as_base64[4]) == text


def test_rows_are_rendered_a_chunk_at_a_time_not_all_at_once():
    rows = [finished(b"x")] * (greencloud.CSV_ROWS_PER_CHUNK * 2 + 1)
    chunks = list(greencloud.csv_renderer(plain=True)(rows))
    assert len(chunks) == 3
    assert len(parsed(b"".join(chunks))) == len(rows) + 1


def test_rfc3339_is_utc_to_the_second():
    assert greencloud.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert greencloud.rfc3339(ISSUED) == "2026-12-02T07:01:02Z"


def test_the_query_defaults_and_accepts_either_case_and_either_spelling():
    assert greencloud.parse_csv_query({}) == greencloud.CsvQuery(False, ExportFilter())
    for raw, expected in (("TRUE", True), ("true", True), ("False", False)):
        assert greencloud.parse_csv_query({"showPlain": raw}).show_plain is expected
    for name in ("scheduleId", "scheduledId"):
        assert greencloud.parse_csv_query({name: "s1"}).filters.schedule_id == "s1"
    both = greencloud.parse_csv_query({"scheduleId": "s1", "scheduledId": "s1"})
    assert both.filters.schedule_id == "s1"
    days = greencloud.parse_csv_query({"dateSince": "2026-12-01", "dateUntil": "2026-12-01"})
    assert (days.filters.since, days.filters.until) == (date(2026, 12, 1), date(2026, 12, 1))


@pytest.mark.parametrize("params", [
    {"showPlain": "yes"}, {"showPlain": "1"}, {"showPlain": ""},
    {"scheduleId": "s1", "scheduledId": "s2"}, {"scheduleId": ""},
    {"dateSince": "2026-13-01"}, {"dateSince": "2026-02-30"}, {"dateUntil": "20261201"},
    {"dateSince": "2026-12-1"}, {"dateUntil": "2026-12-01T00:00"}, {"dateSince": ""},
    {"dateSince": "2026-12-02", "dateUntil": "2026-12-01"},
])
def test_bad_query_parameters_are_400(params):
    with pytest.raises(InvalidRequest) as raised:
        greencloud.parse_csv_query(params)
    assert raised.value.status == 400 and raised.value.message


def test_the_key_range_covers_whole_utc_days_at_both_ends():
    day = date(2026, 12, 1)
    low, high = key_range(ExportFilter(since=day, until=day), 0)
    start, next_day = day_start_ns(day), day_start_ns(date(2026, 12, 2))
    assert low <= time_key(start, TID) <= high
    assert low <= time_key(next_day - 1, "f" * 24) <= high
    assert not low <= time_key(start - 1, "f" * 24) <= high
    assert not low <= time_key(next_day, "0" * 24) <= high


def test_the_key_range_starts_no_earlier_than_the_retention_and_may_be_empty():
    kept_from = day_start_ns(date(2026, 11, 2))
    low, _ = key_range(ExportFilter(since=date(2026, 1, 1)), kept_from)
    assert low == time_key(kept_from, "")
    assert key_range(ExportFilter(until=date(2026, 11, 1)), kept_from) is None
    # the far ends of the calendar stay within the keys' 20 digits
    assert key_range(ExportFilter(since=date.max), 0) is None
    _, high = key_range(ExportFilter(until=date.max), 0)
    assert high == time_key(10**20 - 1, "~")


def test_an_inline_export_must_be_decided_before_the_first_part():
    with pytest.raises(ValueError):
        ExportService(None, None, None, None, inline_max_bytes=8, part_bytes=8)
