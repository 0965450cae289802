"""Pointing this process at moto: the environment every boto3 client reads, set and restored.
The local stack, the tests and the benchmarks all go through here."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from taskfn.local.provision import REGION, function_environment, provision
from taskfn.local.template import Template

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Settings that would send boto3 elsewhere than moto, or to a real profile.
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


def pointed_at(endpoint: str) -> dict[str, str | None]:
    """Variables that send every client to `endpoint` with fake credentials (None: unset)."""
    values: dict[str, str | None] = {"AWS_ENDPOINT_URL": endpoint, **FAKE_CREDENTIALS}
    for name in os.environ:
        if name.startswith("AWS_ENDPOINT_URL_") or name in UNSET:
            values[name] = None
    return values


def offline() -> dict[str, str | None]:
    """For loading handlers without reaching any AWS (the OpenAPI document): fake credentials
    and an endpoint nothing listens on."""
    return pointed_at("http://127.0.0.1:9")


def provisioned_environment(template: Template, *, prefix: str = "taskfn-local") -> dict[
    str, str
]:
    """template.yaml's resources created where AWS_ENDPOINT_URL points; the environment every
    function gets (TABLE_NAME, BUCKET_NAME, TASK_QUEUE_URL, ...)."""
    return function_environment(template, provision(template, prefix=prefix))


def apply(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def patched(values: Mapping[str, str | None]) -> Iterator[None]:
    """os.environ with `values` inside the block, as it was after it."""
    saved = {name: os.environ.get(name) for name in values}
    apply(values)
    try:
        yield
    finally:
        apply(saved)
