"""Small builders shared by integration tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import boto3

from taskfn.local.pollers import build_stream_record, matches
from taskfn.local.template import load_template
from taskfn.models import Caller, Scope
from taskfn.settings import get_settings

TEMPLATE = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
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


class StreamReader:
    """Every record the table's stream holds since the last call (all shards, in order)."""

    def __init__(self) -> None:
        dynamodb = boto3.client("dynamodb")
        self.arn = dynamodb.describe_table(TableName=get_settings().table_name)["Table"][
            "LatestStreamArn"
        ]
        self.client = boto3.client("dynamodbstreams")
        self.iterators: dict[str, str | None] = {}

    def records(self, for_function: str | None = None) -> list[dict]:
        """The new records; for a function, only those its mapping's filters let through."""
        found = self._read()
        if for_function is None:
            return found
        (source,) = [s for s in TEMPLATE.stream_sources if s.function_id == for_function]
        return [r for r in found if any(matches(f, r) for f in source.filters)]

    def _read(self) -> list[dict]:
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            self.iterators.setdefault(shard["ShardId"], self.client.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"])
        found = []
        for shard_id, iterator in self.iterators.items():
            answer = self.client.get_records(ShardIterator=iterator)
            found.extend(build_stream_record(r, self.arn) for r in answer["Records"])
            self.iterators[shard_id] = answer["NextShardIterator"]
        return found
