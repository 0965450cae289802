"""Tags, function PATCH, capabilities and togglePause as a user drives them: `taskfn local`
over real HTTP, real child processes running the functions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskfn import wiring
from taskfn.local.stack import LocalStack
from taskfn.services.holds import PAUSE_CHECK_S

from .conftest import Answer, Client

pytestmark = pytest.mark.e2e

PAUSE_ADMIN = "tfn_e2e-pause-admin-token-0123456789"
# Waits for the file named in ?gate= (if any), then says when it ran.
GATED = '''
import os, time

def handler(event, context):
    gate = event["query"].get("gate")
    if gate:
        deadline = time.time() + 50
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
    return {"ranAt": time.time(), "gated": bool(gate)}
'''


def created(answer: Answer) -> str:
    assert answer.status == 201, answer
    return answer.json()["id"]


def no_content(answer: Answer) -> None:
    assert (answer.status, answer.body) == (204, b""), answer


def refused(answer: Answer, status: int, message: str) -> dict:
    assert answer.status == status, answer
    body = answer.json()
    assert message in body["message"] and set(body) <= {"message", "detail"}, body
    return body


def listed(user: Client, query: str = "") -> list[dict]:
    answer = user.request("GET", f"/v1/function/list{query}")
    assert answer.status == 200, answer
    return answer.json()


def new_user(stack: Client) -> Client:
    answer = stack.request("POST", "/v1/tokens", {"user": f"fn-{uuid.uuid4().hex[:8]}"})
    assert answer.status == 201, answer
    return stack.as_user(answer.json()["token"])


def test_tags_on_functions_list_by_tag_and_patch(stack: Client):
    user = new_user(stack)
    prod = created(user.request("POST", "/v1/tag", {"name": "prod", "color": "#00FF80"}))
    dev = created(user.request("POST", "/v1/tag", {"name": "dev"}))
    assert user.request("GET", "/v1/tag/list").json() == [
        {"id": prod, "name": "prod", "color": "#00ff80"},
        {"id": dev, "name": "dev", "color": "#808080"}]
    refused(user.request("POST", "/v1/tag", {"name": ""}), 400, "invalid tag")
    refused(user.request("POST", "/v1/tag", {"name": "x", "color": "red"}), 400, "invalid tag")

    tagged = created(user.request("POST", "/v1/function", {"name": "tagged", "tag": [prod]}))
    plain = created(user.request("POST", "/v1/function", {"name": "plain"}))
    unknown = "6560f1a0ffffffffffffffff"
    body = refused(user.request("POST", "/v1/function", {"name": "x", "tag": [unknown]}),
                   400, "unknown tag")
    assert unknown in body["message"]
    assert {item["id"] for item in listed(user)} == {tagged, plain}
    assert listed(user, f"?tag={prod}") == [{
        "id": tagged, "name": "tagged", "description": "", "lang": "py",
        "tags": [{"id": prod, "name": "prod", "color": "#00ff80"}],
        "createdAt": listed(user, f"?tag={prod}")[0]["createdAt"]}]
    refused(user.request("GET", f"/v1/function/list?tag={unknown}"), 404, "tag not found")

    no_content(user.request("PATCH", f"/v1/function/{tagged}",
                            {"description": "moved to dev", "tag": [dev]}))
    view = user.request("GET", f"/v1/function/{tagged}").json()
    assert (view["name"], view["description"]) == ("tagged", "moved to dev")
    assert view["tags"] == [{"id": dev, "name": "dev", "color": "#808080"}]
    assert listed(user, f"?tag={prod}") == []
    assert [item["id"] for item in listed(user, f"?tag={dev}")] == [tagged]
    refused(user.request("PATCH", f"/v1/function/{tagged}", {}), 400, "nothing to change")
    refused(user.request("PATCH", f"/v1/function/{tagged}", {"name": "bad name"}), 400,
            "invalid function")

    no_content(user.request("PATCH", f"/v1/tag/{dev}", {"name": "develop", "color": "#0000FF"}))
    view = user.request("GET", f"/v1/function/{tagged}").json()
    assert view["tags"] == [{"id": dev, "name": "develop", "color": "#0000ff"}]
    no_content(user.request("DELETE", f"/v1/tag/{dev}"))
    assert user.request("GET", f"/v1/function/{tagged}").json()["tags"] == []
    refused(user.request("GET", f"/v1/function/list?tag={dev}"), 404, "tag not found")
    refused(user.request("DELETE", f"/v1/tag/{dev}"), 404, "tag not found")


def test_capabilities_are_read_set_and_bounded(stack: Client):
    user = new_user(stack)
    function_id = created(user.request("POST", "/v1/function", {"name": "caps"}))
    path = f"/v1/function/{function_id}/capabilities"
    assert user.request("GET", path).json() == {
        "timeout": 10, "cpuCount": 0, "memSize": 0, "networkLatency": 0, "privileged": False}
    no_content(user.request("POST", path, {"timeout": 60, "memSize": 512}))
    no_content(user.request("POST", path, {"cpuCount": 2}))
    assert user.request("GET", path).json() == {
        "timeout": 60, "cpuCount": 2, "memSize": 512, "networkLatency": 0, "privileged": False}
    assert user.request("GET", f"/v1/function/{function_id}").json()["capabilities"][
        "timeout"] == 60
    for body, field in (({"timeout": 121}, "timeout"), ({"timeout": 9}, "timeout"),
                        ({"cpuCount": "2"}, "cpuCount"), ({"memSize": 2049}, "memSize"),
                        ({"networkLatency": -1}, "networkLatency"),
                        ({"privileged": "yes"}, "privileged")):
        detail = refused(user.request("POST", path, body), 400, "invalid capabilities")["detail"]
        assert detail.startswith(f"{field}: "), detail
    refused(user.request("POST", path, {"privileged": True}), 400,
            "privileged work is not allowed on this platform")
    refused(user.request("POST", path, {}), 400, "nothing to change")
    assert user.request("GET", path).json()["timeout"] == 60  # nothing refused was written


def test_another_user_s_functions_and_tags_are_404(stack: Client):
    alice, bob = new_user(stack), new_user(stack)
    tag = created(alice.request("POST", "/v1/tag", {"name": "mine"}))
    function_id = created(alice.request("POST", "/v1/function", {"name": "mine", "tag": [tag]}))
    attempts = [
        ("GET", f"/v1/function/{function_id}", None),
        ("PATCH", f"/v1/function/{function_id}", {"name": "stolen"}),
        ("POST", f"/v1/function/{function_id}/togglePause", None),
        ("GET", f"/v1/function/{function_id}/capabilities", None),
        ("POST", f"/v1/function/{function_id}/capabilities", {"timeout": 99}),
        ("DELETE", f"/v1/function/{function_id}", None),
        ("PATCH", f"/v1/tag/{tag}", {"name": "stolen"}),
        ("DELETE", f"/v1/tag/{tag}", None),
        ("GET", f"/v1/function/list?tag={tag}", None),
        # Bodies refused for anyone: still 404, so a probe learns nothing of the id.
        ("PATCH", f"/v1/function/{function_id}", {}),
        ("PATCH", f"/v1/function/{function_id}", {"name": "bad name"}),
        ("PATCH", f"/v1/function/{function_id}", "{not json"),
        ("PATCH", f"/v1/function/{function_id}", {"tag": ["6560f1a0ffffffffffffffff"]}),
        ("POST", f"/v1/function/{function_id}/capabilities", {"timeout": 999}),
        ("POST", f"/v1/function/{function_id}/capabilities", {"privileged": True}),
        ("POST", f"/v1/function/{function_id}/capabilities", {}),
        ("PATCH", f"/v1/tag/{tag}", {"color": "red"}),
        ("PATCH", f"/v1/tag/{tag}", {}),
    ]
    for method, path, body in attempts:
        answer = bob.request(method, path, body, content_type="application/json"
                             if body is not None else None)
        assert answer.status == 404, (method, path, body, answer)
    assert bob.request("GET", "/v1/tag/list").json() == []
    bobs_tag = created(bob.request("POST", "/v1/tag", {"name": "bobs"}))
    refused(alice.request("PATCH", f"/v1/function/{function_id}", {"tag": [bobs_tag]}), 400,
            "unknown tag")
    view = alice.request("GET", f"/v1/function/{function_id}").json()
    assert (view["name"], view["paused"], view["capabilities"]["timeout"]) == (
        "mine", False, 10)
    assert [t["id"] for t in view["tags"]] == [tag]


@pytest.fixture
def one_executor() -> Iterator[Client]:
    """A stack of its own whose executor takes one batch at a time: a task queued behind a
    running one waits in the queue, deterministically, until that one has finished."""
    with LocalStack(port=0, admin_token=PAUSE_ADMIN, access_log=False, prefix="fnpause",
                    workers=1) as local:
        admin = Client(local.url, PAUSE_ADMIN)
        answer = admin.request("POST", "/v1/tokens", {"user": "pauser"})
        assert answer.status == 201, answer
        yield admin.as_user(answer.json()["token"])


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_paused_function_refuses_new_tasks_and_runs_its_queued_ones_after_resume(
        one_executor: Client, drop_box: Path):
    """A (gated) runs; B is created behind it and the function paused; a create while
    paused is 409. When A is let go the executor takes B, finds the function paused and holds
    it: B runs only after the resume (its own clock says so), then everything has finished
    and succeeded."""
    user = one_executor
    gate = drop_box / "go"
    function_id = created(user.request("POST", "/v1/function", {"name": "gated",
                                                               "source": GATED}))
    no_content(user.request("POST", f"/v1/function/{function_id}/capabilities",
                            {"timeout": 60}))
    first = created(user.request("POST", f"/v1/task/{function_id}?gate={gate}"))
    assert wait_for(lambda: user.request("GET", f"/v1/task/{first}").json()["assigned"] != "0")
    queued = created(user.request("POST", f"/v1/task/{function_id}"))  # behind `first`
    no_content(user.request("POST", f"/v1/function/{function_id}/togglePause"))
    assert user.request("GET", f"/v1/function/{function_id}").json()["paused"] is True
    refused(user.request("POST", f"/v1/task/{function_id}"), 409, "function is paused")

    # The executor trusts what it read of the pause for PAUSE_CHECK_S: let that pass before
    # `queued` can start, so that it is the pause it sees.
    time.sleep(PAUSE_CHECK_S + 0.5)
    gate.write_text("go")
    answer = user.wait_result(first)
    assert answer.status == 200 and answer.json()["gated"] is True, answer
    # The executor takes `queued` next, starts it, finds the function paused and holds it
    # (the stack runs in this process: its table says so).
    assert wait_for(lambda: wiring.tasks().get(queued).held_at > 0)
    assert user.request("GET", f"/v1/task/{queued}").json()["assigned"] != "0"
    assert user.request("GET", f"/v1/task/{queued}/result").status == 404
    metrics = user.request("GET", f"/v1/function/{function_id}").json()["metrics"]
    assert (metrics["pendingTasks"], metrics["completedTasks"]) == (1, 1), metrics

    resumed_at = time.time()
    no_content(user.request("POST", f"/v1/function/{function_id}/togglePause"))
    assert user.request("GET", f"/v1/function/{function_id}").json()["paused"] is False
    answer = user.wait_result(queued)
    assert answer.status == 200, answer
    ran = answer.json()
    assert ran["gated"] is False and ran["ranAt"] >= resumed_at, (ran, resumed_at)
    assert wiring.tasks().get(queued).held_at == 0
    after = created(user.request("POST", f"/v1/task/{function_id}"))
    assert user.wait_result(after).status == 200
    statuses = {item["id"]: item["status"] for item in
                user.request("GET", "/v1/task/list").json()}
    assert [statuses[task] for task in (first, queued, after)] == [200, 200, 200]
    metrics = user.request("GET", f"/v1/function/{function_id}").json()["metrics"]
    assert metrics == {"todaysTasks": 3, "pendingTasks": 0, "weekTasks": 3,
                       "completedTasks": 3}, metrics
    assert json.loads(user.request("GET", f"/v1/task/{queued}/logs").body)["stderr"] == ""
