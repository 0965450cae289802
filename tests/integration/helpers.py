"""Small builders shared by integration tests."""

from __future__ import annotations

import io
import zipfile

from taskfn.models import Caller, Scope

ALICE = Caller(user="alice", scope=Scope.USER)
BOB = Caller(user="bob", scope=Scope.USER)


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def parse_sse(text: str) -> list[dict]:
    """Server-sent events as an EventSource sees them: fields until a blank line."""
    events, current = [], {}
    for line in text.split("\n"):
        if not line:
            if current:
                events.append(current)
            current = {}
            continue
        name, _, value = line.partition(":")
        current[name] = value.removeprefix(" ")
    return events
