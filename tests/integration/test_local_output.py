"""The local container stand-in's output reaches its log stream while the command runs, not
only at its end (local/containers.py LiveOutput), so a live reader can follow it; and what a
reader gets back at the end is the output as printed, each stream apart."""

from __future__ import annotations

import time

import boto3

from taskfn.local.containers import LiveOutput
from taskfn.runtime.containers import read_outputs
from taskfn.settings import get_settings


def events_of(logs, group: str, stream: str) -> list[str]:
    return [e["message"] for e in logs.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True)["events"]]


def test_output_is_in_the_stream_before_the_run_ends(backend):
    logs, group = boto3.client("logs"), get_settings().job_log_group
    output = LiveOutput(logs, group, "job/job/live-1")
    output.add("stdout", b"first line\n")
    deadline = time.monotonic() + 10
    while not events_of(logs, group, "job/job/live-1"):
        assert time.monotonic() < deadline, "nothing reached the stream while it ran"
        time.sleep(0.05)
    output.add("stdout", b"sec")
    output.add("stderr", "caf\u00e9 \u2603\n".encode()[:4])  # a UTF-8 sequence cut in two
    output.add("stderr", "caf\u00e9 \u2603\n".encode()[4:])
    output.add("stdout", b"ond\nno newline at the end")
    output.close()
    found = read_outputs(logs, group, "job/job/live-1")
    assert found.stdout == "first line\nsecond\nno newline at the end"
    assert found.stderr == "caf\u00e9 \u2603"


def test_a_flood_of_short_lines_is_a_few_records(backend):
    logs, group = boto3.client("logs"), get_settings().job_log_group
    output = LiveOutput(logs, group, "job/job/live-2")
    for _ in range(64):
        output.add("stdout", b"\n" * 65536)
    output.close()
    assert len(events_of(logs, group, "job/job/live-2")) <= 4 * 1024 * 1024 // 16384 + 64
    assert read_outputs(logs, group, "job/job/live-2").stdout == "\n" * (4 * 1024 * 1024 - 1)
