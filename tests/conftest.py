"""Shared fixtures: one moto server for the session, a fresh backend per test built from
template.yaml by the same provisioning code the local stack uses."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _share_botocore_models() -> None:
    """One botocore data loader for the test process. Every fresh backend builds new sessions
    (provisioning, and the clients after wiring.reset), and each new session parses the
    service models again: about half a second a test. The models are read-only data, which
    one session already shares between its clients."""
    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)


_share_botocore_models()


@dataclass(frozen=True)
class Backend:
    endpoint: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from taskfn.local import environment
    from taskfn.local.atomic import make_dynamodb_writes_atomic

    make_dynamodb_writes_atomic()  # conditional writes race as they do in DynamoDB
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with environment.patched(environment.pointed_at(endpoint)):
        yield endpoint
    server.stop()


@pytest.fixture
def drop_box() -> Iterator[Path]:
    """A directory hostile or not, any sandbox may write to (a function's side channel to
    the test, such as a count of its runs): sandboxes may run as users of their own, who
    cannot reach pytest's temp dirs, nor the machine's /tmp."""
    from taskfn.runtime.confinement import remove_tree

    # Not under /tmp: a sandbox of a root parent has a /tmp of its own (runtime/bootstrap.py).
    place = "/run" if os.geteuid() == 0 and os.path.isdir("/run") else None
    path = Path(tempfile.mkdtemp(prefix="taskfn-test-drop-", dir=place))
    path.chmod(0o1777)
    yield path
    remove_tree(path)


_TEMPLATES: list = []


def _template(load):
    """template.yaml parsed once a session (a quarter of a second each time otherwise)."""
    if not _TEMPLATES:
        _TEMPLATES.append(load(ROOT / "template.yaml"))
    return _TEMPLATES[0]


_PROVISIONED: list[tuple[bytes, dict[str, str]]] = []


def _provisioned(template) -> dict[str, str]:
    """template.yaml's resources in the (just reset) in-process moto, and their environment.
    Provisioned once a process, by the local stack's own code; every later test gets a
    fresh copy of that state installed as the local stack restores its kept data
    (local/persistence.py), instead of some thirty API calls again (most of a test's time)."""
    from taskfn.local import environment, persistence

    if _PROVISIONED:
        state, env = _PROVISIONED[0]
        persistence.install(state, "the provisioned test state")
        return env
    env = environment.provisioned_environment(template)
    _PROVISIONED.append((persistence.dumps(), env))
    return env


@pytest.fixture
def backend(moto_endpoint: str, tmp_path: Path) -> Iterator[Backend]:
    """Empty DynamoDB/S3/SQS resources as template.yaml defines them, and the environment
    every function gets (TABLE_NAME, BUCKET_NAME, TASK_QUEUE_URL, ...)."""
    from taskfn import wiring
    from taskfn.local import environment
    from taskfn.local.template import load_template

    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    wiring.reset()
    env = dict(_provisioned(_template(load_template)))
    env["CODE_CACHE_DIR"] = str(tmp_path / "code")
    with environment.patched(env):
        wiring.reset()
        yield Backend(moto_endpoint, env)
    wiring.reset()


@pytest.fixture
def aws_calls(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Every boto3 call made from now on, as (operation, parameters); clear() to start."""
    calls: list[tuple[str, dict[str, Any]]] = []
    original = BaseClient._make_api_call

    def recorded(client: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    return calls
