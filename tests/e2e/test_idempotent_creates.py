"""Idempotency-Key over real HTTP through `taskfn local`: a create retried with the same key
returns the first task's id (201, the same body) and the function runs once, counted by a side
effect the function itself writes; the same key with another body is 422 in GreenCloud's error
shape; the Cell API's desire takes a key too."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Client
from .test_platform_flow import new_function

pytestmark = pytest.mark.e2e

# Appends one line per run to a file named by the task's body: the side effect that counts.
COUNTING = '''
def handler(event, context):
    with open(event["body"]["ledger"], "a") as ledger:
        ledger.write(event["taskId"] + "\\n")
    return {"ran": event["taskId"]}
'''


@pytest.fixture
def ledger() -> Iterator[Path]:
    """A file the sandbox's own user may append to, owned by the test (so the sandbox's
    clean-up of what its user leaves behind keeps it). Not in a temp dir: a sandbox of a
    root parent sees temp dirs of its own, not the machine's (under a parent that is not
    root, sandboxes share the machine's /tmp, so that is where it goes)."""
    base = "/run" if os.geteuid() == 0 and os.access("/run", os.W_OK) else None
    where = Path(tempfile.mkdtemp(prefix="taskfn-e2e-ledger-", dir=base))
    where.chmod(0o755)
    path = where / "ledger.txt"
    path.touch()
    path.chmod(0o666)
    yield path
    shutil.rmtree(where, ignore_errors=True)


def test_a_create_retried_with_its_key_returns_the_first_task_and_runs_once(user: Client,
                                                                            ledger: Path):
    function_id = new_function(user, "counting", COUNTING)
    key = {"Idempotency-Key": f"order-{secrets.token_hex(4)}"}
    body = {"ledger": str(ledger)}
    answers = [user.request("POST", f"/v1/task/{function_id}", body, headers=key)
               for _ in range(4)]
    assert {a.status for a in answers} == {201}
    assert len({a.body for a in answers}) == 1  # the same body each time
    task_id = answers[0].json()["id"]
    assert user.wait_result(task_id).json() == {"ran": task_id}
    time.sleep(2)  # a second run, were there one, would have had the time to write
    assert ledger.read_text().split() == [task_id]
    listed = user.request("GET", f"/v1/task/list?functionId={function_id}").json()
    assert [item["id"] for item in listed] == [task_id]

    reused = user.request("POST", f"/v1/task/{function_id}", {"ledger": "elsewhere"},
                          headers=key)
    assert reused.status == 422
    assert "Idempotency-Key" in reused.json()["message"]
    bad = user.request("POST", f"/v1/task/{function_id}", body,
                       headers={"Idempotency-Key": "x" * 300})
    assert bad.status == 400 and bad.json()["message"] == "invalid Idempotency-Key"


def test_a_desire_retried_with_its_key_succeeds_and_desires_once(user: Client):
    guid = f"keyed-{secrets.token_hex(4)}"
    desire = {"task_guid": guid, "domain": "e2e-keys",
              "task_definition": {"placement_tags": ["gpu"]}}
    key = {"Idempotency-Key": guid}
    for _ in range(3):
        answer = user.request("POST", "/v1/tasks/desire.r2", desire, headers=key)
        assert (answer.status, answer.json()["error"]) == (200, None)
    plain = user.request("POST", "/v1/tasks/desire.r2", desire)
    assert plain.json()["error"]["type"] == "ResourceExists"
    other = user.request("POST", "/v1/tasks/desire.r2", {**desire, "domain": "elsewhere"},
                         headers=key)
    assert other.status == 422 and other.json()["error"]["type"] == "InvalidRequest"
