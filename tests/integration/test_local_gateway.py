"""The local gateway over real HTTP, with throwaway handlers and a throwaway template."""

from __future__ import annotations

import base64
import http.client
import json
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from taskfn.local.gateway import Gateway
from taskfn.local.invoke import Invoker
from taskfn.local.template import load_template

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 7
    MemorySize: 192
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Tok
        Authorizers:
          Tok:
            FunctionArn: !GetAtt AuthFn.Arn
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity: { Headers: [Authorization], ReauthorizeEvery: 60 }
  AuthFn:
    Type: AWS::Serverless::Function
    Properties: { CodeUri: fns/, Handler: auth.handler }
  EchoFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns/
      Handler: echo.handler
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: "/items/{id}" } }
        Post: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: POST, Path: "/items/{id}" } }
        Public:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: ANY, Path: "/public/{proxy+}",
                        Auth: { Authorizer: NONE } }
  SpecialFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns/
      Handler: echo.plain
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /items/special } }
  BinaryFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns/
      Handler: echo.binary
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /binary } }
  BoomFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns/
      Handler: echo.boom
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /boom } }
  WaitFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fns/
      Handler: echo.wait
      Events:
        Get:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: GET, Path: /wait, Auth: { Authorizer: NONE } }
"""

AUTH = """
CALLS = []

def handler(event, context):
    CALLS.append(event)
    token = event["identitySource"][0]
    if token == "deny":
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"user": token.removeprefix("Bearer ")}}
"""

ECHO = """
import base64
import json
import threading

BARRIER = threading.Barrier(2, timeout=10)

def handler(event, context):
    seen = {
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
    body = json.dumps({"event": event, "context": seen})
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": body}

def plain(event, context):
    return {"special": True}

def binary(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "cookies": ["a=1", "b=2; Path=/"],
        "body": base64.b64encode(bytes(range(256))).decode(),
        "isBase64Encoded": True,
    }

def boom(event, context):
    raise RuntimeError("handler broke")

def wait(event, context):
    BARRIER.wait()
    return {"waited": True}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    root = tmp_path_factory.mktemp("gw")
    (root / "fns").mkdir()
    (root / "fns" / "auth.py").write_text(textwrap.dedent(AUTH))
    (root / "fns" / "echo.py").write_text(textwrap.dedent(ECHO))
    (root / "template.yaml").write_text(TEMPLATE)
    template = load_template(root / "template.yaml")
    invoker = Invoker(template, prefix="gw")
    server = Gateway(template, invoker, host="127.0.0.1", port=0, access_log=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def auth_calls(gateway):
    module = gateway.invoker.handler("AuthFn").__globals__
    module["CALLS"].clear()
    return module["CALLS"]


def call(gateway, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def event_of(gateway, method, path, headers=None, body=None):
    status, _, payload = call(
        gateway, method, path, {"Authorization": "Bearer u1", **(headers or {})}, body
    )
    assert status == 200, payload
    return json.loads(payload)


def test_missing_authorization_is_401_without_calling_the_authorizer(gateway, auth_calls):
    status, headers, body = call(gateway, "GET", "/items/1")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    assert headers["apigw-requestid"]
    assert auth_calls == []


def test_authorizer_saying_no_is_403(gateway, auth_calls):
    status, _, body = call(gateway, "GET", "/items/1", {"Authorization": "deny"})
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert len(auth_calls) == 1


def test_authorizer_event_and_cache(gateway, auth_calls):
    for _ in range(2):
        call(gateway, "GET", "/items/7?x=1", {"Authorization": "Bearer cached"})
    (event,) = auth_calls  # the second request used the cached answer
    assert event["type"] == "REQUEST"
    assert event["version"] == "2.0"
    assert event["identitySource"] == ["Bearer cached"]
    assert event["routeKey"] == "GET /items/{id}"
    assert event["routeArn"].endswith("/$default/GET/items/7")
    assert event["rawPath"] == "/items/7"
    assert event["rawQueryString"] == "x=1"
    assert event["pathParameters"] == {"id": "7"}
    assert event["headers"]["authorization"] == "Bearer cached"


def test_route_event_reaches_the_handler(gateway):
    answer = event_of(
        gateway,
        "GET",
        "/items/a%20b?tag=x&tag=y&empty=&q=caf%C3%A9",
        {"X-Multi": "1", "Cookie": "c1=v1; c2=v2", "User-Agent": "tester/1"},
    )
    event, context = answer["event"], answer["context"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/a%20b"
    assert event["rawQueryString"] == "tag=x&tag=y&empty=&q=caf%C3%A9"
    assert event["queryStringParameters"] == {"tag": "x,y", "empty": "", "q": "café"}
    assert event["pathParameters"] == {"id": "a b"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-multi"] == "1"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["stageVariables"] is None
    assert event["isBase64Encoded"] is False and "body" not in event
    request_context = event["requestContext"]
    assert request_context["authorizer"] == {"lambda": {"user": "u1"}}
    assert request_context["http"] == {
        "method": "GET",
        "path": "/items/a%20b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tester/1",
    }
    assert request_context["routeKey"] == "GET /items/{id}"
    assert request_context["stage"] == "$default"
    assert request_context["accountId"] == "123456789012"
    assert request_context["requestId"] and request_context["timeEpoch"] > 0
    assert context["function_name"] == "gw-echofn"
    assert context["memory"] == 192
    assert 0 < context["remaining"] <= 7000


def test_a_client_s_x_forwarded_for_gets_the_peer_appended_and_source_ip_is_the_peer(gateway):
    """As API Gateway: whatever a client writes in X-Forwarded-For, the gateway appends the
    address it saw, and sourceIp is that address alone (public endpoints' ip lists use it)."""
    answer = event_of(gateway, "GET", "/items/1", {"X-Forwarded-For": "198.51.100.7"})
    event = answer["event"]
    assert event["headers"]["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"


def test_repeated_headers_are_joined(gateway):
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=15)
    connection.putrequest("GET", "/items/1")
    connection.putheader("Authorization", "Bearer u1")
    connection.putheader("X-Rep", "a")
    connection.putheader("X-Rep", "b")
    connection.endheaders()
    event = json.loads(connection.getresponse().read())["event"]
    connection.close()
    assert event["headers"]["x-rep"] == "a,b"


def test_text_and_binary_bodies(gateway):
    text = event_of(gateway, "POST", "/items/1", {"Content-Type": "application/json"}, b'{"a":1}')
    assert text["event"]["isBase64Encoded"] is False
    assert text["event"]["body"] == '{"a":1}'
    blob = bytes(range(256))
    binary = event_of(
        gateway, "POST", "/items/1", {"Content-Type": "application/octet-stream"}, blob
    )
    assert binary["event"]["isBase64Encoded"] is True
    assert base64.b64decode(binary["event"]["body"]) == blob
    zipped = event_of(gateway, "POST", "/items/1", {"Content-Type": "application/zip"}, b"PK")
    assert zipped["event"]["isBase64Encoded"] is True


def test_binary_response_and_cookies(gateway):
    status, headers, body = call(gateway, "GET", "/binary", {"Authorization": "u"})
    assert status == 200
    assert body == bytes(range(256))
    assert headers["content-type"] == "application/octet-stream"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2; Path=/"]


def test_answer_without_status_code_is_json_200(gateway):
    status, headers, body = call(gateway, "GET", "/items/special", {"Authorization": "u"})
    assert (status, json.loads(body)) == (200, {"special": True})
    assert headers["content-type"] == "application/json"


def test_public_greedy_route_needs_no_token(gateway, auth_calls):
    status, _, body = call(gateway, "DELETE", "/public/a/b")
    event = json.loads(body)["event"]
    assert status == 200
    assert event["routeKey"] == "ANY /public/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert "authorizer" not in event["requestContext"]
    assert auth_calls == []


def test_unknown_route_is_404(gateway):
    assert call(gateway, "GET", "/nowhere")[::2] == (404, b'{"message":"Not Found"}')
    assert call(gateway, "PUT", "/items/1")[0] == 404


def test_raising_handler_is_500_and_the_server_keeps_serving(gateway, capfd):
    status, _, body = call(gateway, "GET", "/boom", {"Authorization": "u"})
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert "RuntimeError: handler broke" in capfd.readouterr().err
    assert call(gateway, "GET", "/items/special", {"Authorization": "u"})[0] == 200


def test_body_over_10_mb_is_413(gateway):
    connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=15)
    connection.putrequest("POST", "/items/1")
    connection.putheader("Authorization", "u")
    connection.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (
        413,
        {"message": "Request Entity Too Large"},
    )
    connection.close()


def test_requests_are_served_concurrently(gateway):
    # The handler waits for a second request at a barrier: one thread alone would time out.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: call(gateway, "GET", "/wait"), range(2)))
    assert [status for status, _, _ in results] == [200, 200]


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "BREW", "CONNECT"])
def test_a_method_without_a_route_is_api_gateway_s_404_json(gateway, method):
    status, headers, body = call(gateway, method, "/items/1", {"Authorization": "u"})
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert headers["Content-Type"] == "application/json"


def test_a_malformed_request_is_400_json(gateway):
    import socket

    with socket.create_connection((gateway.host, gateway.port), timeout=15) as raw:
        raw.sendall(b"GET\x00 / HTTP/9\r\n\r\n")
        answer = raw.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") or head.startswith(b"HTTP/1.0 400"), head
    assert json.loads(body) == {"message": "Bad Request"}


def test_a_burst_of_clients_is_held_not_reset(gateway):
    """Hundreds of connections at once wait in the listen backlog instead of being reset."""
    import socket

    sockets = [socket.create_connection((gateway.host, gateway.port), timeout=30)
               for _ in range(300)]
    try:
        for raw in sockets:
            raw.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [raw.makefile("rb").read() for raw in sockets]
    finally:
        for raw in sockets:
            raw.close()
    assert all(answer.startswith(b"HTTP/1.1 404") for answer in answers)


@pytest.mark.parametrize("framing", [
    b"Content-Length: abc\r\n\r\n",
    b"Content-Length: -5\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n-1\r\n" + b"x" * 65536,
])
def test_a_body_whose_framing_cannot_be_read_is_400_json(gateway, framing):
    import socket

    with socket.create_connection((gateway.host, gateway.port), timeout=15) as raw:
        raw.sendall(b"POST /items/1 HTTP/1.1\r\nHost: x\r\nAuthorization: u\r\n" + framing)
        raw.shutdown(socket.SHUT_WR)
        answer = raw.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert json.loads(body) == {"message": "Bad Request"}
