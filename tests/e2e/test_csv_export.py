"""The CSV export through `taskfn local` over real HTTP: real tasks of a real function, the
file parsed as a spreadsheet would read it; a large one through S3 (a multipart upload and a
presigned GET, under the function's own role)."""

from __future__ import annotations

import base64
import csv
import http.client
import io
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e

HEADER = ["ID", "IssuedAt", "Status", "ContentType", "Body"]
SOURCE = '''
def handler(event, context):
    mode = event["query"].get("mode")
    if mode == "formula":
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"},
                "body": "=HYPERLINK(\\"http://evil.example\\",\\"click\\")"}
    if mode == "big":
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"},
                "body": "b" * (700 * 1024)}
    return {"n": event["body"]["n"], "text": "a, \\"quoted\\"\\nline"}
'''


def get(url: str, path: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One GET, redirects not followed (a client must not send its token on to S3)."""
    parts = urlsplit(url + path)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target,
                           headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def table(data: bytes) -> list[list[str]]:
    limit = csv.field_size_limit(16 * 1024 * 1024)  # Python's reader stops at 128 KiB a cell
    try:
        rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    finally:
        csv.field_size_limit(limit)
    assert rows[0] == HEADER
    return rows[1:]


@pytest.fixture(scope="module")
def exported(user: Client) -> tuple[str, list[str]]:
    """A function and three finished tasks of it, oldest first: two JSON results and a text
    one that a spreadsheet would run as a formula."""
    created = user.request("POST", "/v1/function", {"name": "exported", "source": SOURCE})
    assert created.status == 201, created
    function_id = created.json()["id"]
    tasks = []
    for query, body in (("", {"n": 1}), ("?mode=formula", {}), ("", {"n": 3})):
        answer = user.request("POST", f"/v1/task/{function_id}{query}", body)
        assert answer.status == 201, answer
        tasks.append(answer.json()["id"])
    for task_id in tasks:
        assert user.wait_result(task_id).status == 200
    return function_id, tasks


def test_the_csv_of_a_function_s_tasks_parses_into_its_header_and_rows(user: Client, exported):
    function_id, tasks = exported
    today = datetime.now(UTC).date().isoformat()
    status, data, headers = get(user.url, f"/v1/task/{function_id}/csv?showPlain=true"
                                f"&dateSince={today}&dateUntil={today}", user.token)
    assert status == 200, data
    assert headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"] == f'attachment; filename="{function_id}.csv"'
    rows = table(data)
    assert [row[0] for row in rows] == tasks  # oldest first
    for row in rows:
        issued = datetime.strptime(row[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert issued.date().isoformat() == today
        assert row[2] == "200"
    assert rows[0][3] == "application/json"
    assert rows[0][4] == '{"n": 1, "text": "a, \\"quoted\\"\\nline"}'
    # the formula comes out as text a spreadsheet shows, never runs
    assert rows[1][3] == "text/plain"
    assert rows[1][4] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    # without showPlain: base64 of each body
    status, data, _ = get(user.url, f"/v1/task/{function_id}/csv", user.token)
    assert status == 200
    encoded = table(data)
    assert base64.b64decode(encoded[1][4]) == rows[1][4][1:].encode()


def test_bad_queries_are_400_and_another_user_s_function_404(stack: Client, user: Client,
                                                              exported):
    function_id, _ = exported
    for query in ("showPlain=maybe", "dateSince=yesterday", "scheduleId=a&scheduledId=b",
                  "dateSince=2026-12-02&dateUntil=2026-12-01"):
        status, body, _ = get(user.url, f"/v1/task/{function_id}/csv?{query}", user.token)
        assert status == 400, (query, body)
    answer = stack.request("POST", "/v1/tokens", {"user": "mallory", "scope": "user"})
    mallory = answer.json()["token"]
    status, body, _ = get(user.url, f"/v1/task/{function_id}/csv", mallory)
    assert status == 404 and b"not found" in body
    assert get(user.url, f"/v1/task/{function_id}/csv")[0] == 401


def test_a_large_csv_is_a_redirect_to_it_in_s3(user: Client, exported):
    """Two results of 700 KiB (kept in S3) make a CSV over the 1 MiB an answer holds: it is
    uploaded in parts to exports/ and answered with a 303 to a presigned GET."""
    function_id, tasks = exported
    big = []
    for _ in range(2):
        answer = user.request("POST", f"/v1/task/{function_id}?mode=big", {})
        assert answer.status == 201, answer
        big.append(answer.json()["id"])
    for task_id in big:
        assert user.wait_result(task_id).status in (200, 303)
    status, body, headers = get(user.url, f"/v1/task/{function_id}/csv?showPlain=true",
                                user.token)
    assert status == 303 and body == b"", body[:200]
    assert headers["cache-control"] == "no-store"
    status, data, headers = get(headers["location"], "")
    assert status == 200, data[:300]
    assert headers["content-type"] == "text/csv; charset=utf-8"
    rows = table(data)
    assert [row[0] for row in rows] == [*tasks, *big]
    assert rows[3][4] == rows[4][4] == "b" * (700 * 1024)
