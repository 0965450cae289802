"""The whole flow a new user follows, through `taskfn local` over real HTTP, with real
child processes running real functions."""

from __future__ import annotations

import io
import zipfile

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e

ECHO = '''
import json

def handler(event, context):
    context.set_progress(40)
    print("query was", json.dumps(event["query"]))
    mode = event["query"].get("mode")
    if mode == "text":
        return "hello " + str(event["body"])
    if mode == "raise":
        raise ValueError("asked to fail")
    if mode == "teapot":
        return {"statusCode": 418, "headers": {"Content-Type": "text/x-tea"}, "body": "short"}
    return {"body": event["body"], "query": event["query"], "taskId": event["taskId"]}
'''

MISBEHAVING = '''
import os, sys, time

def handler(event, context):
    mode = event["query"]["mode"]
    if mode == "spin":
        while True:
            pass
    if mode == "flood":
        sys.stdout.write("x" * (5 * 1024 * 1024))
        return "flooded"
    if mode == "exit":
        os._exit(7)
    if mode == "env":
        return sorted(k for k in os.environ if k.startswith("AWS"))
'''


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def new_function(user: Client, name: str, code: str) -> str:
    created = user.request("POST", "/v1/function", {"name": name, "lang": "PY"})
    assert created.status == 201, created
    function_id = created.json()["id"]
    build = user.request("POST", f"/v1/build/{function_id}", zip_of({"main.py": code}),
                         content_type="application/octet-stream")
    assert build.status == 201, build
    status = user.request("GET", f"/v1/build/{build.json()['id']}").json()
    assert status["status"] == "SUCCESS", status
    assert status["functionId"] == function_id
    return function_id


def run(user: Client, function_id: str, query: str = "", body=None, content_type=None) -> str:
    answer = user.request("POST", f"/v1/task/{function_id}{query}", body,
                          content_type=content_type)
    assert answer.status == 201, answer
    return answer.json()["id"]


def test_three_tasks_run_and_replay_the_functions_responses(user: Client):
    function_id = new_function(user, "echo", ECHO)
    first = run(user, function_id, "?mode=json&page=2", {"name": "John Doe", "age": 30})
    second = run(user, function_id, "?mode=text", "plain words", "text/plain")
    third = run(user, function_id, "?mode=teapot")

    answer = user.wait_result(first)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"body": {"name": "John Doe", "age": 30},
                             "query": {"mode": "json", "page": "2"}, "taskId": first}
    answer = user.wait_result(second)
    assert (answer.status, answer.headers["Content-Type"], answer.body) == (
        200, "text/plain", b"hello plain words")
    answer = user.wait_result(third)
    assert (answer.status, answer.headers["Content-Type"], answer.body) == (
        418, "text/x-tea", b"short")

    listed = {item["id"]: item for item in user.request("GET", "/v1/task/list").json()}
    assert {first, second, third} <= listed.keys()
    assert [listed[t]["status"] for t in (first, second, third)] == [200, 200, 418]
    assert listed[first]["progress"] == 100

    task = user.request("GET", f"/v1/task/{first}").json()
    assert task["functionId"] == function_id
    assert int(task["finished"]) >= int(task["assigned"]) >= int(task["issued"]) > 0
    assert task["node"].startswith("executor-")
    logs = user.request("GET", f"/v1/task/{first}/logs").json()
    assert 'query was {"mode": "json", "page": "2"}' in logs["stdout"]


def test_a_function_that_raises_fails_its_task_with_500(user: Client):
    function_id = new_function(user, "raiser", ECHO)
    task_id = run(user, function_id, "?mode=raise")
    answer = user.wait_result(task_id)
    assert answer.status == 500
    assert answer.json() == {"errorType": "ValueError", "errorMessage": "asked to fail"}
    listed = {i["id"]: i for i in user.request("GET", "/v1/task/list").json()}
    assert listed[task_id]["status"] == 500
    logs = user.request("GET", f"/v1/task/{task_id}/logs").json()
    assert "Traceback" in logs["stderr"] and "asked to fail" in logs["stderr"]


def test_misbehaving_code_gets_clear_answers_and_the_platform_keeps_serving(user: Client):
    function_id = new_function(user, "misbehaving", MISBEHAVING)
    spin = run(user, function_id, "?mode=spin")
    flood = run(user, function_id, "?mode=flood")
    exiting = run(user, function_id, "?mode=exit")
    env = run(user, function_id, "?mode=env")

    answer = user.wait_result(flood)
    assert (answer.status, answer.body) == (200, b"flooded")
    logs = user.request("GET", f"/v1/task/{flood}/logs").json()
    assert logs["stdoutDropped"] > 0 and len(logs["stdout"]) <= 1024 * 1024
    answer = user.wait_result(exiting)
    assert answer.status == 500 and "7" in answer.json()["errorMessage"]
    answer = user.wait_result(env)
    assert answer.json() == []
    answer = user.wait_result(spin, timeout=90)
    assert answer.status == 504
    assert user.request("GET", "/v1/function/list").status == 200


def test_bad_input_gets_clear_4xx_answers(stack: Client, user: Client):
    function_id = new_function(user, "target", ECHO)
    assert stack.as_user("not-a-real-token-at-all").request("GET", "/v1/task/list").status == 401
    assert Client(stack.url).request("GET", "/v1/task/list").status == 401
    assert user.request("POST", "/v1/tokens", {"user": "x", "scope": "admin"}).status == 403

    malformed = user.request("POST", f"/v1/task/{function_id}", "{oops",
                             content_type="application/json")
    assert malformed.status == 400 and malformed.json()["message"] == "malformed JSON body"
    assert user.request("POST", "/v1/function", "{oops",
                        content_type="application/json").status == 400
    too_big = user.request("POST", f"/v1/task/{function_id}", "x" * (1024 * 1024 + 10),
                           content_type="text/plain")
    assert too_big.status == 413 and "message" in too_big.json()
    assert user.request("GET", "/v1/task/0123456789abcdef01234567").status == 404
    assert user.request("GET", "/v1/task/nonsense/result").status == 404

    for archive, reason in (
        (zip_of({"../escape.py": "x", "main.py": ECHO}), ".."),
        (zip_of({"lib.py": ECHO}), "main.py"),
    ):
        build = user.request("POST", f"/v1/build/{function_id}", archive,
                             content_type="application/octet-stream")
        status = user.request("GET", f"/v1/build/{build.json()['id']}").json()
        assert status["status"] == "FAILED" and reason in status["log"][-1]

    other = stack.request("POST", "/v1/tokens", {"user": "bob", "scope": "user"}).json()
    bob = stack.as_user(other["token"])
    task_id = run(user, function_id, "?mode=json")
    assert bob.request("GET", f"/v1/task/{task_id}").status == 404
    assert bob.request("GET", f"/v1/function/{function_id}").status == 404
    assert bob.request("POST", f"/v1/task/{function_id}", {}).status == 404
    assert user.wait_result(task_id).status == 200


def test_deleting_a_function_keeps_its_results(user: Client):
    function_id = new_function(user, "shortlived", ECHO)
    task_id = run(user, function_id, "?mode=text", "bye", "text/plain")
    assert user.wait_result(task_id).status == 200
    assert user.request("DELETE", f"/v1/function/{function_id}").status == 204
    assert user.request("GET", f"/v1/function/{function_id}").status == 404
    assert user.request("POST", f"/v1/task/{function_id}", {}).status == 404
    assert user.wait_result(task_id).body == b"hello bye"
