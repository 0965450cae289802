"""Small builders shared by integration tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import boto3

from taskfn import wiring
from taskfn.local.pollers import StreamShards, passes
from taskfn.local.template import load_template
from taskfn.models import Caller, Scope
from taskfn.settings import get_settings
from taskfn.stores.tasks import open_partitions

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
ALICE = Caller(user="alice", scope=Scope.USER)
BOB = Caller(user="bob", scope=Scope.USER)


def open_keys() -> list[str]:
    """The keys (PK) on the open index, every shard of it, sorted."""
    found = []
    for partition in open_partitions():
        items, _ = wiring.table().query_all("GSI3", partition, bound=10_000)
        found += [item["PK"] for item in items]
    return sorted(found)


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


class StreamReader:
    """Every record the table's stream holds since the last call (all shards, in order), read
    as the local stack's mappings read it."""

    def __init__(self) -> None:
        table = boto3.client("dynamodb").describe_table(TableName=get_settings().table_name)
        self.shards = StreamShards(boto3.client("dynamodbstreams"),
                                   table["Table"]["LatestStreamArn"])

    def records(self, for_function: str | None = None) -> list[dict]:
        """The new records; for a function, only those its mapping's filters let through."""
        self.shards.find()
        found = [record for page in self.shards.read() for record in page]
        if for_function is None:
            return found
        (source,) = [s for s in TEMPLATE.stream_sources if s.function_id == for_function]
        return [r for r in found if passes(r, source.filters)]
