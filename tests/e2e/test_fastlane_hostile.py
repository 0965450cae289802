"""Hostile enqueue bodies and outputs over the local stack's HTTP: a clear 400 or a view
that still answers, never a 500 (each test the attack, failing when it works)."""

from __future__ import annotations

import time

import pytest

from .conftest import Client
from .test_fastlane_jobs import Fastlane, finished

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def carol(stack: Client) -> Fastlane:
    """A user of this module's own (the jobs tests' counts are their user's)."""
    answer = stack.request("POST", "/v1/tokens", {"user": "mallory-fl", "scope": "user"})
    return Fastlane(stack, answer.json()["token"])


def test_a_bracketed_webhook_url_is_a_plain_400(carol):
    """URLs urlsplit raises ValueError for (an unclosed or bad IPv6 bracket): a plain 400."""
    for url in ("http://[oops/", "http://[zz]/"):
        answer = carol("POST", "/tasks/zz-attack2-url", {
            "image": "alpine", "command": "echo hi",
            "webhooks": {"finishes": [{"url": url}]}})
        assert answer.status == 400, (url, answer.status, answer.body[:200])


def test_job_details_of_control_character_output_answer(carol):
    """Executions printing 64 KiB of \\x01 on each stream (six characters each in JSON):
    the job's details still answer, each output cut by its encoded size."""
    script = "import sys; sys.stdout.write(chr(1)*65536); sys.stderr.write(chr(1)*65536)"
    enqueued = carol("POST", "/tasks/zz-attack2-ugly", {
        "image": "python", "command": f'python3 -c "{script}"'}).json()
    job_id = enqueued["jobId"]
    time.sleep(3)
    first = carol("GET", f"/tasks/zz-attack2-ugly/jobs/{job_id}")
    print("after one run", first.status, len(first.body), first.body[:300])
    finished(carol, "zz-attack2-ugly", job_id)
    for _ in range(19):
        assert carol("POST", f"/tasks/zz-attack2-ugly/jobs/{job_id}/retry").status == 200
        time.sleep(2)
        probe = carol("GET", f"/tasks/zz-attack2-ugly/jobs/{job_id}")
        if probe.status != 200:
            break
    answer = carol("GET", f"/tasks/zz-attack2-ugly/jobs/{job_id}")
    print("details", answer.status, len(answer.body))
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert len(answer.json()["job"]["executions"]) == 20


def test_deeply_nested_metadata_is_refused_or_shown(carol):
    """Metadata nested as deep as json.loads allows would make every later view of the job
    (and its webhook bodies, which nest it deeper) a RecursionError: refused at enqueue."""
    def post(depth):
        body = ('{"image":"alpine","command":"echo hi","metadata":{"x":' + "[" * depth
                + "]" * depth + "}}").encode()
        return carol("POST", "/tasks/zz-attack2-deep", body, content_type="application/json")

    low, high = 1, 10000  # the deepest metadata the enqueue takes
    while low < high:
        middle = (low + high + 1) // 2
        if post(middle).status == 200:
            low = middle
        else:
            high = middle - 1
    answer = post(low)
    print("deepest accepted", low, answer.status)
    job_id = answer.json()["jobId"]
    details = carol("GET", f"/tasks/zz-attack2-deep/jobs/{job_id}")
    print("details", details.status, details.body[:200])
    assert details.status == 200, (details.status, details.body[:200])
