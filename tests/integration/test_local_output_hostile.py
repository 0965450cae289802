"""The local stand-in's LiveOutput against output and failures meant to lose or hold back
lines: each test the attack, failing when it works."""

from __future__ import annotations

import time

import boto3

from taskfn.local import containers as local
from taskfn.local.containers import LiveOutput
from taskfn.runtime.containers import read_outputs
from taskfn.settings import get_settings


class FlakyLogs:
    """CloudWatch Logs whose PutLogEvents is throttled once."""

    def __init__(self, failures: int = 1) -> None:
        self.client = boto3.client("logs")
        self.failures = failures

    def create_log_stream(self, **call):
        return self.client.create_log_stream(**call)

    def put_log_events(self, **call):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("ThrottlingException (simulated)")
        return self.client.put_log_events(**call)


def test_a_failed_flush_does_not_lose_output(backend):
    """A PutLogEvents that fails (throttling): its lines go back to the buffer, and the next
    flush writes them."""
    logs, group = FlakyLogs(), get_settings().job_log_group
    output = LiveOutput(logs, group, "job/job/flaky-1")
    output.add("stdout", b"line one\nline two\n")
    deadline = time.monotonic() + 5
    while logs.failures and time.monotonic() < deadline:
        time.sleep(0.05)
    output.add("stdout", b"line three\n")
    output.close()
    found = read_outputs(logs.client, group, "job/job/flaky-1")
    assert found.stdout == "line one\nline two\nline three", repr(found.stdout)


def test_a_long_partial_line_is_not_held_back(backend, monkeypatch):
    """1 MiB printed without a newline reaches the stream at once, cut in records, not at
    16 KiB per flush (a minute late)."""
    _, rest = local.pack_lines("x" * (1024 * 1024), final=False)
    assert len(rest) <= local.RECORD_CHARS, f"{len(rest)} characters held back"
