"""The local stack's reading of template.yaml, its intrinsics and its routing (no AWS)."""

from __future__ import annotations

import base64

import pytest

from taskfn.local.gateway import Router, is_text, route_key, to_response
from taskfn.local.pollers import build_sqs_event, succeeded_messages
from taskfn.local.provision import Provisioned, _creation_order
from taskfn.local.template import (
    DEFAULT_TEMPLATE,
    HttpRoute,
    SqsSource,
    load_template,
    load_yaml,
)


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_default_template_is_the_repository_one(template):
    assert template.path == DEFAULT_TEMPLATE
    assert DEFAULT_TEMPLATE.name == "template.yaml" and DEFAULT_TEMPLATE.is_file()


def test_env_variable_chooses_the_template(tmp_path, monkeypatch):
    other = tmp_path / "t.yaml"
    other.write_text("Resources: {}\n")
    monkeypatch.setenv("TASKFN_TEMPLATE", str(other))
    assert load_template().path == other


def test_short_tags_become_intrinsic_functions():
    document = load_yaml(
        """
        a: !Ref Table
        b: !GetAtt Queue.Arn
        c: !Sub "x-${Table}"
        d: !Join [",", [!Ref A, b]]
        e: !If [IsProd, 1, !Ref AWS::NoValue]
        f: !Select [0, !GetAZs ""]
        g: !GetAtt [Queue, QueueName]
        """
    )
    assert document["a"] == {"Ref": "Table"}
    assert document["b"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert document["c"] == {"Fn::Sub": "x-${Table}"}
    assert document["d"] == {"Fn::Join": [",", [{"Ref": "A"}, "b"]]}
    assert document["e"] == {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}
    assert document["f"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert document["g"] == {"Fn::GetAtt": ["Queue", "QueueName"]}


def test_routes_and_their_authorizer(template):
    routes = {(route.method, route.path): route for route in template.routes}
    assert routes[("GET", "/v1/task/{id}")].function_id == "GetTaskFunction"
    assert routes[("GET", "/v1/task/list")].function_id == "ListTasksFunction"
    assert routes[("POST", "/v1/tokens")].authorizer == "TokenAuthorizer"
    # the documented routes without a token: the API's docs, and a public endpoint's call
    # and its task's result (which check a token themselves when one is given)
    public = {"/openapi.json", "/docs", "/docs/{asset}", "/console", "/console/{asset}",
              "/gc/{id}", "/gc/{id}/result",
              "/healthcheck", "/healthcheck/", "/"}
    assert all(route.authorizer == "TokenAuthorizer" for route in template.routes
               if route.path not in public)
    assert {route.path for route in template.routes if route.authorizer is None} == public
    assert all(route.function_id in template.functions for route in template.routes)


def test_authorizer(template):
    spec = template.authorizers["TokenAuthorizer"]
    assert spec.function_id == "AuthorizerFunction"
    # Called for every request, a missing header included: the route answers the 401.
    assert spec.identity_headers == ()
    assert spec.simple_responses is True
    assert spec.reauthorize_every == 0


def test_executor_sqs_source(template):
    assert SqsSource("ExecutorFunction", "TaskQueue", 4, True) in template.sqs_sources


def test_functions_get_globals(template):
    executor = template.functions["ExecutorFunction"]
    assert executor.handler == "run_tasks.handler"
    assert executor.code_uri == DEFAULT_TEMPLATE.parent / "functions" / "executor"
    assert (executor.timeout, executor.memory_mb) == (900, 1769)
    get_task = template.functions["GetTaskFunction"]
    assert (get_task.timeout, get_task.memory_mb) == (10, 256)
    assert get_task.environment["TABLE_NAME"] == {"Ref": "Table"}
    assert get_task.environment["TASK_QUEUE_URL"] == {"Ref": "TaskQueue"}
    assert get_task.environment["POWERTOOLS_SERVICE_NAME"] == "taskfn"
    assert template.parameters["LogLevel"] == "INFO"


def test_public_route_and_default_route(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Tok
        Authorizers:
          Tok: { FunctionArn: !GetAtt Auth.Arn, Identity: { Headers: [Authorization] } }
  Auth:
    Type: AWS::Serverless::Function
    Properties: { CodeUri: fns, Handler: auth.handler }
  Health:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns
      Handler: health.handler
      Events:
        Get:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: get, Path: /health, Auth: { Authorizer: NONE } }
        Rest:
          Type: HttpApi
          Properties: { ApiId: !Ref Api }
"""
    )
    template = load_template(path)
    assert template.routes == [
        HttpRoute("GET", "/health", "Health", None),
        HttpRoute("ANY", "$default", "Health", "Tok"),
    ]
    assert template.authorizers["Tok"].reauthorize_every == 0
    assert template.functions["Health"].code_uri == tmp_path / "fns"


# --- intrinsics -------------------------------------------------------------------------


def test_resolve_intrinsics():
    provisioned = Provisioned(
        refs={"Table": "t-table", "Queue": "http://q"},
        attrs={("Queue", "Arn"): "arn:q"},
        parameters={"LogLevel": "INFO"},
        conditions={"IsDebug": {"Fn::Equals": [{"Ref": "LogLevel"}, "DEBUG"]}},
    )
    assert provisioned.resolve({"Ref": "Table"}) == "t-table"
    assert provisioned.resolve({"Ref": "LogLevel"}) == "INFO"
    assert provisioned.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == "arn:q"
    assert provisioned.resolve({"Fn::Sub": "${Table}/${Queue.Arn}/${AWS::Region}/${!x}"}) == (
        "t-table/arn:q/us-east-1/${x}"
    )
    assert provisioned.resolve({"Fn::Sub": ["${a}-${Table}", {"a": {"Ref": "LogLevel"}}]}) == (
        "INFO-t-table"
    )
    assert provisioned.resolve({"Fn::Join": ["-", ["a", {"Ref": "Table"}]]}) == "a-t-table"
    assert provisioned.resolve({"Fn::Select": [1, ["a", "b"]]}) == "b"
    assert provisioned.resolve({"Fn::If": ["IsDebug", "x", "y"]}) == "y"
    assert provisioned.resolve(5) == "5"
    assert provisioned.resolve_tree(
        {"A": {"Ref": "AWS::NoValue"}, "B": [{"Ref": "Table"}, {"Ref": "AWS::NoValue"}]}
    ) == {"B": ["t-table"]}
    with pytest.raises(KeyError):
        provisioned.resolve({"Ref": "Missing"})


def test_creation_order_follows_references(template):
    wanted = {"Table", "Bucket", "TaskQueue", "TaskDeadLetterQueue"}
    order = _creation_order(template.resources, wanted)
    assert set(order) == wanted
    assert order.index("TaskDeadLetterQueue") < order.index("TaskQueue")


# --- routing ----------------------------------------------------------------------------


def _router(*specs: str) -> Router:
    return Router(
        [HttpRoute(*spec.split(" ", 1), function_id=spec, authorizer=None) for spec in specs]
    )


def _chosen(router: Router, method: str, path: str):
    matched = router.match(method, path)
    return None if matched is None else (matched[0].function_id, matched[1])


def test_literal_segments_beat_variables():
    router = _router("GET /v1/task/{id}", "GET /v1/task/list", "GET /v1/task/{id}/result")
    assert _chosen(router, "GET", "/v1/task/list") == ("GET /v1/task/list", {})
    assert _chosen(router, "GET", "/v1/task/t1") == ("GET /v1/task/{id}", {"id": "t1"})
    assert _chosen(router, "GET", "/v1/task/t1/result") == (
        "GET /v1/task/{id}/result",
        {"id": "t1"},
    )
    assert _chosen(router, "GET", "/v1/task") is None
    assert _chosen(router, "GET", "/v1/task/") is None
    assert _chosen(router, "POST", "/v1/task/t1") is None


def test_greedy_is_last_and_any_is_after_named_methods():
    router = _router("ANY /files/{proxy+}", "GET /files/{name}", "ANY /{proxy+}", "POST /files/x")
    assert _chosen(router, "GET", "/files/a") == ("GET /files/{name}", {"name": "a"})
    assert _chosen(router, "DELETE", "/files/a") == ("ANY /files/{proxy+}", {"proxy": "a"})
    assert _chosen(router, "GET", "/files/a/b%20c") == ("ANY /files/{proxy+}", {"proxy": "a/b c"})
    assert _chosen(router, "POST", "/files/x") == ("POST /files/x", {})
    assert _chosen(router, "GET", "/other/y") == ("ANY /{proxy+}", {"proxy": "other/y"})
    assert _chosen(router, "GET", "/") is None


def test_default_route_catches_the_rest():
    router = Router([HttpRoute("GET", "/a", "A", None), HttpRoute("ANY", "$default", "D", None)])
    assert _chosen(router, "GET", "/a") == ("A", {})
    assert _chosen(router, "PUT", "/zzz") == ("D", {})
    assert route_key(router.default) == "$default"


def test_path_parameters_are_decoded():
    router = _router("GET /u/{name}")
    assert _chosen(router, "GET", "/u/a%2Fb") == ("GET /u/{name}", {"name": "a/b"})


# --- bodies and responses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/x-www-form-urlencoded", True),
        ("application/vnd.api+json", True),
        ("application/octet-stream", False),
        ("application/zip", False),
        ("image/png", False),
        (None, False),
    ],
)
def test_text_content_types(content_type, text):
    assert is_text(content_type) is text


def test_response_formats():
    plain = to_response({"a": 1})
    assert (plain.status, plain.body) == (200, b'{"a": 1}')
    assert ("Content-Type", "application/json") in plain.headers
    assert to_response("hi").body == b'"hi"'
    full = to_response(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "multiValueHeaders": {"X-B": ["1", "2"]},
            "cookies": ["a=1", "b=2"],
            "body": base64.b64encode(b"\x00\xff").decode(),
            "isBase64Encoded": True,
        }
    )
    assert full.status == 201 and full.body == b"\x00\xff"
    assert full.headers == [
        ("X-A", "1"),
        ("X-B", "1"),
        ("X-B", "2"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert to_response({"statusCode": 204}).body == b""


# --- SQS --------------------------------------------------------------------------------


def _message(message_id: str) -> dict:
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": "b",
        "MD5OfBody": "m",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {"k": {"StringValue": "v", "DataType": "String"}},
    }


def test_sqs_event_shape():
    (record,) = build_sqs_event([_message("1")], "arn:q")["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:q"
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"] == "rh-1"
    assert record["messageAttributes"]["k"]["stringValue"] == "v"
    assert record["messageAttributes"]["k"]["dataType"] == "String"


def test_batch_item_failures():
    messages = [_message("1"), _message("2"), _message("3")]
    ids = lambda kept: [message["MessageId"] for message in kept]  # noqa: E731
    failure = {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert ids(succeeded_messages(messages, failure, True)) == ["1", "3"]
    assert ids(succeeded_messages(messages, failure, False)) == ["1", "2", "3"]
    assert ids(succeeded_messages(messages, None, True)) == ["1", "2", "3"]
    assert ids(succeeded_messages(messages, {"batchItemFailures": []}, True)) == ["1", "2", "3"]
    unknown = {"batchItemFailures": [{"itemIdentifier": "9"}]}
    assert succeeded_messages(messages, unknown, True) == []
