"""The contract's fuzzer (issue 9): schemathesis generates requests for every operation of the
committed openapi.json (valid and invalid inputs), sends them over real HTTP to a local stack
with a token chosen per case (a user's, another user's, a cell's, the admin's, an unknown one,
none), and checks each answer: never a 5xx, a status and a body the document gives (so every
4xx is in the route's own error shape), a 401 without a valid token, and a 404 for another
user's ids. About FUZZ_CASES cases in all (2,500 by default; `make fuzz` runs more)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import Client, in_process_stack
from .test_contract import NOT_OWNED_ROUTES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "tfn_fuzz-admin-token-0123456789"
CASES = int(os.environ.get("FUZZ_CASES", "2500"))
schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                with_security_parameters=False)  # tokens: WHO below
OPERATIONS = sum(1 for _ in schema.get_all_operations())
PER_OPERATION = max(10, CASES // OPERATIONS)
# Short waits for the events route (it may hold a request for 20 s otherwise), and tasks that
# end fast: the fuzzer is about answers, not about running code.
SETTINGS = {"EVENTS_WAIT_S": "0.2", "EVENTS_SETTLE_S": "0.5"}
WHO = ("alice", "alice", "bob", "cell", "admin", "unknown", "none")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class Fixture:
    def __init__(self, url: str, tokens: dict[str, str | None], ids: dict[str, list[str]]):
        self.url = url
        self.tokens = tokens
        self.ids = ids  # alice's, by the kind of id a path takes
        self.jobs: list[dict[str, str]] = []  # alice's fastlane jobs, by path parameter


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fixture]:
    with in_process_stack(ADMIN, "fuzz", SETTINGS) as stack:
        admin = Client(stack.url, ADMIN)
        tokens: dict[str, str | None] = {"admin": ADMIN, "unknown": "tfn_" + "0" * 40,
                                         "none": None}
        for who, scope in (("alice", "user"), ("bob", "user")):
            answer = admin.request("POST", "/v1/tokens", {"user": f"fuzz-{who}",
                                                          "scope": scope})
            tokens[who] = answer.json()["token"]
        tokens["cell"] = admin.request("POST", "/v1/node/fuzz-cell", {}).json()["token"]
        alice = Client(stack.url, tokens["alice"])
        functions = [alice.request("POST", "/v1/function", {
            "name": f"echo{n}",
            "source": "def handler(event, context):\n    return {'got': event['body']}\n",
        }).json()["id"] for n in range(2)]
        builds = [alice.request("GET", f"/v1/function/{f}").json()["buildId"]
                  for f in functions]
        tasks = [alice.request("POST", f"/v1/task/{functions[0]}", {"n": n}).json()["id"]
                 for n in range(2)]
        for task in tasks:
            assert alice.wait_result(task).status == 200
        nodes = [alice.request("POST", "/v1/node/fuzz-alice-node", {}).json()["hash"]]
        fixture = Fixture(stack.url, tokens, {"function": functions, "build": builds,
                                              "task": tasks, "node": nodes})
        for n in range(2):
            job = alice.request("POST", f"/tasks/fuzz-group-{n}",
                                {"image": "a", "command": "true"}).json()
            fixture.jobs.append({"id": job["taskId"], "jobId": job["jobId"],
                                 "executionId": job["executionId"]})
        yield fixture


def kind_of(path: str) -> str:
    if path.startswith("/v1/node/"):
        return "node"
    if path.startswith("/v1/build/") and "{" in path:
        return "build"
    return "task" if path.startswith("/v1/task/{id}/") else "function"


@schema.parametrize()
@schema.given(who=st.sampled_from(WHO), known=st.integers(min_value=0, max_value=3))
@settings(max_examples=PER_OPERATION, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(fuzzed, case, who, known):
    operation = case.operation
    path = operation.path
    owned_id = None
    if case.path_parameters and known < 2:  # half the cases on ids that exist
        pool = fuzzed.ids[kind_of(path)]
        if path == "/v1/task/{id}" and case.method == "GET":
            pool = fuzzed.ids["task"]
        owned_id = pool[known % len(pool)]
        case.path_parameters = {name: owned_id for name in case.path_parameters}
        if path.startswith("/tasks/{id}"):  # fastlane's: a group, its job, its execution
            job = fuzzed.jobs[known % len(fuzzed.jobs)]
            case.path_parameters = {name: job[name] for name in case.path_parameters}
    if case.method == "DELETE" and who in ("alice", "admin") and owned_id is not None:
        # Alice's resources are what the other cases probe: never delete them.
        case.path_parameters = {name: uuid.uuid4().hex[:24] for name in case.path_parameters}
        owned_id = None
    token = fuzzed.tokens[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Not followed: fastlane's /ws answers a 307 to the WebSocket API (ws://).
    response = case.call(base_url=fuzzed.url, headers=headers, timeout=60,
                         allow_redirects=False)
    case.validate_response(response, checks=CHECKS)

    public = not operation.definition.raw.get("security")
    if not public and who in ("unknown", "none"):
        assert response.status_code == 401, (case.method, path, response.text[:200])
    # A node's hash is global (a taken one is 409 to anyone) and only its cell heartbeats it.
    not_owned = (case.method, path) in NOT_OWNED_ROUTES or (
        # fastlane's group names are the owner's own: Bob's enqueue makes his own group
        path.startswith("/tasks/") and case.method != "GET")
    fastlane_read = path.startswith("/tasks/") and case.method == "GET"
    if who == "bob" and owned_id is not None and not path.startswith("/v1/tasks") \
            and not not_owned and not fastlane_read:
        assert response.status_code == 404, (case.method, path, response.text[:200])
    if who == "bob" and owned_id is not None and fastlane_read:
        # Bob's own enqueue may have made a group of that name: his, never Alice's jobs.
        alice_jobs = {job["jobId"] for job in fuzzed.jobs}
        assert response.status_code == 404 or not any(
            job_id in response.text for job_id in alice_jobs), (path, response.text[:200])
    kinds = {k.lower(): v for k, v in response.headers.items()}.get("content-type") or [""]
    plain = (kinds if isinstance(kinds, str) else kinds[0]).startswith("text/plain")
    if plain and response.status_code >= 400:  # fastlane's enqueue refusals, only those
        assert case.method in ("POST", "PUT") and path.startswith("/tasks/"), path
        assert response.status_code in (400, 413) and response.text, response.text
    elif response.status_code >= 400 and not public:
        body = json.loads(response.text)
        tag = operation.definition.raw["tags"][0]
        if tag.startswith("Cell API"):
            assert set(body) == {"error"} and body["error"]["type"], body
        elif tag.startswith("fastlane"):
            assert set(body) == {"error", "operation"} and body["error"], body
        elif tag.startswith("Coder"):  # codersdk.Response: validations beside the detail
            assert body.get("message") and set(body) <= {"message", "detail", "validations"}, \
                body
        else:
            assert body.get("message") and set(body) <= {"message", "detail"}, body


def test_the_fuzzer_reaches_every_route_of_the_template():
    from taskfn.local.template import load_template

    template = load_template(ROOT / "template.yaml")
    fuzzed_routes = {(op.method.upper(), op.path) for op in
                     (result.ok() for result in schema.get_all_operations())}
    assert fuzzed_routes == {(route.method, route.path) for route in template.routes}
    assert min(CASES, 5000) - OPERATIONS <= PER_OPERATION * OPERATIONS
    assert re.match(r"^\d+$", str(PER_OPERATION))
