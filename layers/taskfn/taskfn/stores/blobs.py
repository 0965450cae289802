"""S3 objects: code, large inputs and results, logs. Keys come from ids, never from names."""

from __future__ import annotations

from typing import Any


def code_key(function_id: str, build_id: str) -> str:
    return f"code/{function_id}/{build_id}.zip"


def task_key(task_id: str, name: str) -> str:
    return f"tasks/{task_id}/{name}"


class BlobStore:
    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
