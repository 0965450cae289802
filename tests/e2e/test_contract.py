"""The contract over HTTP (issue 9): every template route refuses a missing or unknown token
with 401 in its own API's shape before reading any body; another user's ids are 404 on every
route that takes one; the document and its Swagger UI page are served without a token."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest

from taskfn.local.template import load_template

from .conftest import Client

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
DOCUMENT = json.loads((ROOT / "openapi.json").read_text())
PRIVATE = sorted((r.method, r.path) for r in TEMPLATE.routes if r.authorizer is not None)


def api_of(method: str, path: str) -> str:
    (tag,) = DOCUMENT["paths"][path][method.lower()]["tags"]
    return tag


def assert_unauthorized(answer, method: str, path: str) -> None:
    assert answer.status == 401, (method, path, answer)
    body = answer.json()
    if api_of(method, path).startswith("Cell API"):
        assert body["error"]["type"] == "Unauthorized" and body["error"]["message"], body
    elif api_of(method, path).startswith("fastlane"):
        assert body == {"error": "Authentication required.", "operation": body["operation"]}
        assert body["operation"] and answer.headers["WWW-Authenticate"].startswith("Basic")
    else:
        assert set(body) <= {"message", "detail"} and body["message"], body


@pytest.mark.parametrize(("method", "path"), PRIVATE, ids=[f"{m} {p}" for m, p in PRIVATE])
@pytest.mark.parametrize("token", [None, "tfn_not-a-token-anybody-has-0123", "x" * 600],
                         ids=["missing", "unknown", "oversized"])
def test_a_missing_or_unknown_token_is_401_in_the_route_s_own_shape(stack, method, path,
                                                                   token):
    # Queries and a body no route could parse: the 401 must come first.
    url = re.sub(r"\{[^}]+\}", "6560f1a0ffffffffffffffff", path) + "?limit=0&wait=-1&cursor=%"
    client = Client(stack.url, token)
    answer = client.request(method, url, b"{not json" if method != "GET" else None,
                            content_type="application/json")
    assert_unauthorized(answer, method, path)


@pytest.fixture(scope="module")
def owners(stack: Client) -> tuple[Client, Client, dict[str, str]]:
    """Alice's function, build, task and Cell API task; and Bob, who must see none of them."""
    clients = []
    for name in ("alice", "bob"):
        answer = stack.request("POST", "/v1/tokens", {"user": f"{name}-{uuid.uuid4().hex[:6]}"})
        assert answer.status == 201, answer
        clients.append(stack.as_user(answer.json()["token"]))
    alice, bob = clients
    created = alice.request("POST", "/v1/function", {
        "name": "mine", "source": "def handler(event, context):\n    return 'secret'\n"})
    function_id = created.json()["id"]
    build = alice.request("GET", f"/v1/function/{function_id}").json()["buildId"]
    task = alice.request("POST", f"/v1/task/{function_id}", {"a": 1}).json()["id"]
    assert alice.wait_result(task).status == 200
    guid = f"mine-{uuid.uuid4().hex}"
    desired = alice.request("POST", "/v1/tasks/desire.r2", {
        "task_guid": guid, "domain": "mine", "task_definition": {"function_id": function_id}})
    assert desired.json() == {"error": None}
    deadline = time.monotonic() + 30
    while alice.request("POST", "/v1/tasks/get_by_task_guid.r3",
                        {"task_guid": guid}).json()["task"]["state"] == "Pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    tag = alice.request("POST", "/v1/tag", {"name": "mine"}).json()["id"]
    endpoint = alice.request("POST", f"/v1/endpoint/{function_id}", {}).json()["id"]
    schedule = alice.request("POST", "/v1/scheduled", {
        "functionId": function_id, "cron": "0 0 1 1 *", "timezone": "UTC"}).json()["id"]
    trigger = alice.request("POST", "/v1/trigger", {  # triggers
        "functionId": function_id, "nextId": function_id, "status": 599,
        "includeResult": False}).json()["id"]
    node = f"contract-{uuid.uuid4().hex[:12]}"
    assert alice.request("POST", f"/v1/node/{node}", {}).status == 201
    job = alice.request("POST", "/tasks/mine-group", {"image": "a", "command": "echo secret"})
    version = f"{build[:8]}-{build[8:12]}-{build[12:16]}-{build[16:20]}-{build[20:]}00000000"
    agent = alice.request("POST", "/api/v2/tasks/me", {
        "template_version_id": version, "input": "secret", "name": "mine"})
    assert agent.status == 201, agent
    preset = alice.request("POST", "/api/v2/taskfn/presets", {"name": "mine"})
    assert preset.status == 201, preset
    return alice, bob, {"function": function_id, "build": build, "task": task, "guid": guid,
                        "tag": tag, "endpoint": endpoint, "schedule": schedule,
                        "trigger": trigger, "node": node, "group": "mine-group",
                        "job": job.json()["jobId"], "execution": job.json()["executionId"],
                        "agent": agent.json()["id"], "agent_name": "mine",
                        "alice": agent.json()["owner_name"], "version": version,
                        "preset": preset.json()["id"]}


ID_ROUTES = {
    ("PATCH", "/v1/node/{hash}"): "node", ("DELETE", "/v1/node/{hash}"): "node",
    ("GET", "/v1/function/{id}"): "function", ("DELETE", "/v1/function/{id}"): "function",
    ("POST", "/v1/build/{id}"): "function", ("GET", "/v1/build/{id}"): "build",
    ("POST", "/v1/build/{id}/upload"): "function",
    ("POST", "/v1/task/{id}"): "function", ("GET", "/v1/task/{id}"): "task",
    ("GET", "/v1/task/{id}/result"): "task", ("GET", "/v1/task/{id}/logs"): "task",
    ("GET", "/v1/task/{id}/csv"): "function",
    ("PATCH", "/v1/function/{id}"): "function", ("POST", "/v1/function/{id}/togglePause"):
    "function", ("GET", "/v1/function/{id}/capabilities"): "function",
    ("POST", "/v1/function/{id}/capabilities"): "function",
    ("PATCH", "/v1/tag/{id}"): "tag", ("DELETE", "/v1/tag/{id}"): "tag",
    # public endpoints
    ("POST", "/v1/endpoint/{id}"): "function", ("GET", "/v1/endpoint/{id}"): "endpoint",
    ("PATCH", "/v1/endpoint/{id}"): "endpoint", ("DELETE", "/v1/endpoint/{id}"): "endpoint",
    ("GET", "/v1/endpoint/{id}/metrics"): "endpoint",
    # schedules
    ("GET", "/v1/scheduled/{id}"): "schedule", ("PATCH", "/v1/scheduled/{id}"): "schedule",
    ("DELETE", "/v1/scheduled/{id}"): "schedule",
    ("PUT", "/v1/scheduled/{id}/payload"): "schedule",
    ("POST", "/v1/scheduled/{id}/try"): "schedule",
    # triggers
    ("GET", "/v1/trigger/{id}"): "trigger", ("PATCH", "/v1/trigger/{id}"): "trigger",
    ("DELETE", "/v1/trigger/{id}"): "trigger",
}
# fastlane's routes: a group's name is the owner's own (Bob's POST or PUT under Alice's group
# name makes his own group), so only the reads can be Alice's.
FASTLANE_READS = sorted({
    (r.method, r.path) for r in TEMPLATE.routes if r.method == "GET" and (
        r.path.startswith("/tasks/{id}")) and not r.path.rstrip("/").endswith("/ws")})
# …and fastlane's /ws routes, redirects to the WebSocket API: Alice's a 307, Bob's a 404.
FASTLANE_REDIRECTS = sorted({
    (r.method, r.path) for r in TEMPLATE.routes if r.path.rstrip("/").endswith("/ws")})
FASTLANE_WRITES = {("POST", "/tasks/{id}"), ("POST", "/tasks/{id}/"),
                   ("PUT", "/tasks/{id}/jobs/{jobId}"), ("PUT", "/tasks/{id}/jobs/{jobId}/")}
# …while stop and retry act on a job that must be the caller's.
FASTLANE_ACTIONS = sorted({
    (r.method, r.path) for r in TEMPLATE.routes if r.method == "POST" and r.path.startswith(
        "/tasks/{id}/") and r.path.rstrip("/").endswith(("/stop", "/retry"))})
# What Bob sends to routes that take a JSON body: a valid request, refused only as not his.
JSON_BODIES = {("PATCH", "/v1/function/{id}"): {"name": "theirs"},
               ("POST", "/v1/function/{id}/capabilities"): {"timeout": 20},
               ("PATCH", "/v1/tag/{id}"): {"name": "theirs"},
               ("POST", "/v1/endpoint/{id}"): {"description": "theirs"},
               ("PATCH", "/v1/endpoint/{id}"): {"description": "theirs"},
               ("PATCH", "/v1/scheduled/{id}"): {"description": "theirs"},
               ("PATCH", "/v1/trigger/{id}"): {"description": "theirs"}}
GUID_ROUTES = ["/v1/tasks/get_by_task_guid.r3", "/v1/tasks/cancel", "/v1/tasks/resolving",
               "/v1/tasks/delete"]


# Routes that take another's id without a 404, and why: a node's hash is unique across owners
# (registering a taken one is 409, whoever holds it), and only a node's own cell token
# heartbeats it (a user token is 403 before any id is read).
NOT_OWNED_ROUTES = {("POST", "/v1/node/{hash}"): 409, ("POST", "/v1/node/{hash}/heartbeat"): 403}
# Coder's routes: {user} is "me", a name or an id, {task} an id or a name; Alice's, named by
# Bob either way, are 404 (as a user Bob is not, and as a task he does not have); her presets
# too. What Bob sends where a body is read: a valid request, refused only as not his.
CODER_ROUTES = sorted((r.method, r.path) for r in TEMPLATE.routes
                      if r.path.startswith(("/api/v2/", "/api/experimental/")) and "{" in r.path)
CODER_BODIES = {("POST", "/api/v2/tasks/{user}"): {"input": "theirs"},
                ("POST", "/api/v2/tasks/{user}/{task}/send"): {"input": "theirs"},
                ("PATCH", "/api/v2/tasks/{user}/{task}/input"): {"input": "theirs"},
                ("PUT", "/api/v2/taskfn/presets/{preset}"): {"name": "theirs"}}


def test_every_route_with_an_id_is_covered_here():
    with_ids = {(r.method, r.path) for r in TEMPLATE.routes if "{" in r.path
                and r.authorizer is not None}
    assert with_ids == set(ID_ROUTES) | set(NOT_OWNED_ROUTES) | set(FASTLANE_READS) | \
        FASTLANE_WRITES | set(FASTLANE_ACTIONS) | set(FASTLANE_REDIRECTS) | set(CODER_ROUTES)
    # The Cell API's user routes take the guid in the body; cells' routes see every task.
    user_routes = {path for path, item in DOCUMENT["paths"].items()
                   if path.startswith("/v1/tasks/") and "TaskGuidRequest" in json.dumps(item)}
    assert user_routes == set(GUID_ROUTES)


@pytest.mark.parametrize(("method", "path"), sorted(ID_ROUTES))
def test_another_user_s_ids_are_404(owners, method, path):
    alice, bob, ids = owners
    url = re.sub(r"\{[a-z]+\}", ids[ID_ROUTES[(method, path)]], path)
    if path.endswith("/upload"):
        answer = bob.request(method, url, {"size": 22})
    elif (method, path) in JSON_BODIES:
        answer = bob.request(method, url, JSON_BODIES[(method, path)])
    else:
        body = b"PK\x05\x06" + bytes(18) if path.startswith("/v1/build") else None
        answer = bob.request(method, url, body, content_type="application/octet-stream"
                             if body else None)
    assert answer.status == 404, answer
    assert b"secret" not in answer.body
    # And Alice's are all still hers.
    again = alice.request("GET", f"/v1/function/{ids['function']}")
    assert again.status == 200


@pytest.mark.parametrize(("method", "path"), CODER_ROUTES)
def test_another_user_s_agent_tasks_and_presets_are_404(owners, method, path):
    alice, bob, ids = owners
    named = [("me", ids["agent"]), ("me", ids["agent_name"]), (ids["alice"], ids["agent"]),
             (ids["alice"], ids["agent_name"])]
    if "{task}" not in path:
        named = [(ids["alice"], "")] if "{user}" in path else [("", "")]
    for user, task in named:
        url = path.replace("{user}", user).replace("{task}", task) \
            .replace("{preset}", ids["preset"])
        body = CODER_BODIES.get((method, path))
        if path == "/api/v2/tasks/{user}":
            body = {**body, "template_version_id": ids["version"]}
        answer = bob.request(method, url, body)
        assert answer.status == 404, (url, answer)
        assert set(answer.json()) <= {"message", "detail", "validations"}
        assert b"secret" not in answer.body
    again = alice.request("GET", f"/api/v2/tasks/me/{ids['agent']}")
    assert (again.status, again.json()["name"]) == (200, "mine")
    assert alice.request("GET", "/api/v2/taskfn/presets").json()[0]["id"] == ids["preset"]


@pytest.mark.parametrize(("method", "path"), FASTLANE_READS)
def test_another_user_s_fastlane_groups_jobs_and_executions_are_404(owners, method, path):
    alice, bob, ids = owners
    url = path.replace("{id}", ids["group"]).replace("{jobId}", ids["job"]).replace(
        "{executionId}", ids["execution"])
    answer = bob.request(method, url)
    assert answer.status == 404, answer
    assert set(answer.json()) == {"error", "operation"} and b"secret" not in answer.body
    assert alice.request(method, url).status == 200


@pytest.mark.parametrize(("method", "path"), FASTLANE_REDIRECTS)
def test_another_user_s_fastlane_sockets_are_404(owners, method, path):
    import http.client
    from urllib.parse import urlsplit

    alice, bob, ids = owners
    url = path.replace("{id}", ids["group"]).replace("{jobId}", ids["job"]).replace(
        "{executionId}", ids["execution"])
    answer = bob.request(method, url)
    assert answer.status == 404, answer
    assert set(answer.json()) == {"error", "operation"}
    split = urlsplit(alice.url)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    connection.request(method, url, headers={"Authorization": f"Bearer {alice.token}"})
    redirect = connection.getresponse()
    assert redirect.status == 307 and "ticket=" in redirect.getheader("Location")
    connection.close()


@pytest.mark.parametrize(("method", "path"), FASTLANE_ACTIONS)
def test_another_user_cannot_stop_or_retry_a_fastlane_job(owners, method, path):
    alice, bob, ids = owners
    url = path.replace("{id}", ids["group"]).replace("{jobId}", ids["job"]).replace(
        "{executionId}", ids["execution"])
    answer = bob.request(method, url)
    assert answer.status == 404, answer
    assert set(answer.json()) == {"error", "operation"}
    job = alice.request("GET", f"/tasks/{ids['group']}/jobs/{ids['job']}").json()["job"]
    assert job["executionCount"] == 1  # no retry of hers was made
    assert "User stopped" not in json.dumps(job)


@pytest.mark.parametrize(("method", "path"), sorted(NOT_OWNED_ROUTES))
def test_another_user_s_node_is_neither_taken_nor_beaten_for(owners, method, path):
    alice, bob, ids = owners
    answer = bob.request(method, path.replace("{hash}", ids["node"]), {"running": 1})
    assert answer.status == NOT_OWNED_ROUTES[(method, path)], answer
    (node,) = [n for n in alice.request("GET", "/v1/node/list").json()
               if n["hash"] == ids["node"]]
    assert node["lastHeartbeat"] is None and not node["disabled"]  # untouched


@pytest.mark.parametrize("path", GUID_ROUTES)
def test_another_user_s_cell_api_tasks_are_resource_not_found(owners, path):
    alice, bob, ids = owners
    answer = bob.request("POST", path, {"task_guid": ids["guid"]})
    assert answer.status == 200 and answer.json()["error"]["type"] == "ResourceNotFound"
    listed = bob.request("POST", "/v1/tasks/list.r3", {"domain": "mine"}).json()
    assert listed == {"error": None, "tasks": []}
    mine = alice.request("POST", "/v1/tasks/get_by_task_guid.r3", {"task_guid": ids["guid"]})
    assert mine.json()["error"] is None


def test_the_document_and_its_page_need_no_token(stack):
    anonymous = Client(stack.url)
    document = anonymous.request("GET", "/openapi.json")
    assert document.status == 200 and document.json() == DOCUMENT
    page = anonymous.request("GET", "/docs")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assets = re.findall(r'(?:href|src)="(docs/[^"]+)"', page.body.decode())
    assert len(assets) == 4
    for asset in assets:
        answer = anonymous.request("GET", "/" + asset)
        assert answer.status == 200 and len(answer.body) > 10, asset
    bundle = anonymous.request("GET", "/docs/swagger-ui-bundle.js").body
    assert b"SwaggerUIBundle" in bundle and b"https://" not in page.body
    missing = anonymous.request("GET", "/docs/..%2f..%2fetc%2fpasswd")
    assert missing.status == 404 and missing.json()["message"]
