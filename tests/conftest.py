"""Shared fixtures: one moto server for the session, a fresh backend per test built from
template.yaml by the same provisioning code the local stack uses."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Backend:
    endpoint: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from taskfn.local.atomic import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()  # conditional writes race as they do in DynamoDB
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


@pytest.fixture
def backend(moto_endpoint: str, tmp_path: Path) -> Iterator[Backend]:
    """Empty DynamoDB/S3/SQS resources as template.yaml defines them, and the environment
    every function gets (TABLE_NAME, BUCKET_NAME, TASK_QUEUE_URL, ...)."""
    from taskfn import wiring
    from taskfn.local.provision import function_environment, provision
    from taskfn.local.template import load_template

    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    wiring.reset()
    template = load_template(ROOT / "template.yaml")
    env = function_environment(template, provision(template))
    env["CODE_CACHE_DIR"] = str(tmp_path / "code")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    wiring.reset()
    yield Backend(moto_endpoint, env)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    wiring.reset()
