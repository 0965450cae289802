"""fastlane's enqueue payload, checked in upstream's order with its texts; masking, the
pagination object and the search index's words (adapters/fastlane.py)."""

from __future__ import annotations

import json

import pytest

from taskfn.adapters import fastlane
from taskfn.errors import InvalidRequest, PayloadTooLarge


def refusal(body: object) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(fastlane.PlainBadRequest) as caught:
        fastlane.parse_enqueue(raw)
    answer = fastlane.error_response(caught.value)
    assert answer.status_code == 400 and answer.content_type.startswith("text/plain")
    return answer.body


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1]", b"null", b'"x"',
                                 b'{"image": NaN}', b"[" * 100_000])
def test_a_body_that_is_not_a_json_object_is_the_parse_text(raw):
    assert refusal(raw) == "Failed to enqueue task because JSON body could not be parsed."


@pytest.mark.parametrize("body", [{}, {"image": "ubuntu"}, {"command": "ls"},
                                  {"image": "", "command": "ls"}])
def test_image_and_command_are_required(body):
    assert refusal(body) == "image and command must be filled in the request."


def test_the_checks_come_in_upstream_s_order():
    # Missing command and two schedules: the command's text comes first.
    assert refusal({"image": "u", "startIn": "5m", "cron": "* * * * *"}).startswith("image")
    assert refusal({"image": "u", "command": "ls", "startIn": "5m", "cron": "* * * * *"}) == (
        "Only ONE of 'startAt', 'startIn' and 'cron' should be in the request.")


def test_a_body_over_its_limit_is_413_text():
    raw = json.dumps({"image": "u", "command": "x" * (fastlane.ENQUEUE_BODY_MAX)}).encode()
    with pytest.raises(PayloadTooLarge) as caught:
        fastlane.parse_enqueue(raw)
    assert fastlane.error_response(caught.value).content_type.startswith("text/plain")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("retries", -1, "retries"), ("retries", 9, "retries"), ("retries", "2", "retries"),
    ("retries", True, "retries"), ("timeout", 0, "timeout"), ("timeout", -3, "timeout"),
    ("timeout", "10", "timeout"), ("envs", {"A": 1}, "envs"), ("envs", ["A"], "envs"),
    ("expiration", -5, "expiration"), ("startAt", "tomorrow", "startAt"),
    ("startIn", "soon", "startIn"), ("startIn", "5²", "startIn"), ("cron", "0 0 31 2 *", "cron"),
    ("webhooks", {"succeeds": [{"url": "ftp://x"}]}, "webhooks.succeeds"),
    ("webhooks", {"always": []}, "webhooks"), ("notify", {"fails": ["not-mail"]}, "notify"),
    ("additionalDNSEntries", {"h": 1}, "additionalDNSEntries"),
    ("command", "echo 'unclosed", "command"), ("image", 7, "image"),
])
def test_a_bad_field_is_a_400_naming_it(field, value, says):
    assert says in refusal({"image": "ubuntu", "command": "ls", field: value})


def test_a_number_beyond_a_double_is_no_timeout():
    assert "timeout" in refusal(b'{"image": "u", "command": "ls", "timeout": 1e400}')


def test_a_good_payload_is_kept_with_upstream_s_defaults_and_caps():
    job = fastlane.parse_enqueue(json.dumps({
        "image": "ubuntu", "command": "echo hi", "envs": {"A": "1"}, "retries": 2,
        "timeout": 99_999, "startIn": "1h2m3s", "metadata": "ignored",
        "webhooks": {"succeeds": [{"url": "https://example.com/h", "retries": 3}]},
        "notify": {"fails": ["ops@example.com"]}}).encode())
    assert (job.timeout, job.retries, job.start_in_s, job.metadata) == (1800, 2, 3723, {})
    assert job.scheduled and job.webhooks["succeeds"][0].retries == 3
    assert job.notify == {"fails": ("ops@example.com",)}
    plain = fastlane.parse_enqueue(b'{"image": "u", "command": "ls"}')
    assert (plain.timeout, plain.retries, plain.scheduled) == (1800, 0, False)


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10), ("5m", 300), ("2h30m50s", 9050), ("90", 90), (45, 45)])
def test_start_in_forms(text, seconds):
    assert fastlane.parse_start_in(text) == seconds


def test_env_values_whose_keys_name_secrets_are_masked_at_any_depth():
    shown = fastlane.masked({"DB_PASSWORD": "p", "api_key": "k", "Client_ID": "c",
                             "SECRET": "s", "PATH": "/bin", "nested": {"aws_secret": "x"},
                             "list": [{"token_key": "y"}]})
    assert shown == {"DB_PASSWORD": "***", "api_key": "***", "Client_ID": "***",
                     "SECRET": "***", "PATH": "/bin", "nested": {"aws_secret": "***"},
                     "list": [{"token_key": "***"}]}


def test_the_pagination_object_has_nine_keys_and_absolute_urls():
    page = fastlane.pagination([{"taskId": "a"}], total=25, page=2,
                               base_url="https://api.example", path="/search/",
                               query={"query": "build"})
    assert set(page) == {"items", "total", "page", "pages", "perPage", "hasNext", "hasPrev",
                         "nextUrl", "prevUrl"}
    assert (page["pages"], page["hasNext"], page["hasPrev"]) == (3, True, True)
    assert page["nextUrl"] == "https://api.example/search/?query=build&page=3"
    assert page["prevUrl"] == "https://api.example/search/?query=build&page=1"
    last = fastlane.pagination([], total=0, page=1, base_url="http://h", path="/tasks/")
    assert (last["pages"], last["nextUrl"], last["prevUrl"]) == (0, None, None)


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", "²"])
def test_a_page_must_be_a_positive_integer(text):
    with pytest.raises(InvalidRequest, match="positive integer"):
        fastlane.page_number(text)


def test_search_words_are_the_id_s_runs_of_letters_and_digits():
    assert fastlane.words("build-2026_Report.v2") == {"build", "2026", "report", "v2"}
    assert fastlane.words("---") == frozenset()


def test_other_errors_are_fastlane_s_json_body():
    answer = fastlane.error_response(InvalidRequest("Task not found.", None), "get_task")
    assert answer.status_code == 400
    assert json.loads(answer.body) == {"error": "Task not found.", "operation": "get_task"}


@pytest.mark.parametrize("body", [
    b'{"image": "a", "command": "\\ud800"}',  # a lone surrogate: no process takes it
    b'{"image": "a", "command": "echo \\u0000"}',
    b'{"image": "a", "command": "true", "envs": {"K": "\\udfff"}}',
    b'{"image": "a", "command": "true", "startIn": "99999999999h"}',
    b'{"image": "a", "command": "true", "startIn": 1000000000000000000000000000000}',
    b'{"image": "a", "command": "true", "startIn": "999999999999"}',
    b'{"image": "a", "command": "   "}',
])
def test_what_no_run_could_take_is_a_plain_400(body):
    with pytest.raises(fastlane.PlainBadRequest):
        fastlane.parse_enqueue(body)
