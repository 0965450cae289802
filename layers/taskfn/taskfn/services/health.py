"""fastlane's /healthcheck over taskfn's own dependencies: DynamoDB, S3 and SQS, each asked
one cheap question that needs it to answer (fastlane asks Redis and Docker the same way)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import aws, wiring
from taskfn.settings import Settings, get_settings

# A key (and an S3 prefix) nothing writes: reading it proves the store answers.
PROBE_KEY = ("HEALTH", "HEALTH")


@dataclass(frozen=True)
class Health:
    checks: dict[str, bool]
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(self.checks.values())


class HealthService:
    def __init__(self, table: Any, s3: Any, sqs: Any, settings: Settings):
        self.table = table
        self.s3 = s3
        self.sqs = sqs
        self.settings = settings

    @classmethod
    def from_env(cls) -> HealthService:
        return cls(wiring.table(), aws.LazyClient("s3"), aws.LazyClient("sqs"), get_settings())

    def check(self) -> Health:
        probes: dict[str, Callable[[], object]] = {
            "dynamodb": lambda: self.table.get(*PROBE_KEY),
            "s3": lambda: self.s3.list_objects_v2(Bucket=self.settings.bucket_name,
                                                  Prefix="health/", MaxKeys=1),
            "sqs": lambda: self.sqs.get_queue_attributes(
                QueueUrl=self.settings.task_queue_url, AttributeNames=["QueueArn"]),
        }
        checks: dict[str, bool] = {}
        errors: list[dict[str, str]] = []
        for source, probe in probes.items():
            try:
                probe()
                checks[source] = True
            except (ClientError, BotoCoreError) as error:
                checks[source] = False
                errors.append({"source": source, "message":
                               f"Connection to {source} failed (error: {_said(error)})."})
        return Health(checks, errors)


def _said(error: Exception) -> str:
    """What failed, without the request's details (ARNs, URLs) a public route should not
    show."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "error")
    return type(error).__name__
