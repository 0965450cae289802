"""The first of fastlane's jobs API over HTTP: /healthcheck without a token, with and without
its trailing slash, and HTTP Basic auth with a taskfn token as the password."""

from __future__ import annotations

import base64

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/healthcheck", "/healthcheck/", "/"])
def test_healthcheck_answers_without_a_token(stack: Client, path: str):
    answer = Client(stack.url).request("GET", path)
    assert answer.status == 200, answer
    assert answer.json() == {"dynamodb": True, "s3": True, "sqs": True, "errors": []}


def test_a_token_as_the_basic_password_authenticates(stack: Client, user: Client):
    anonymous = Client(stack.url)
    header = "Basic " + base64.b64encode(f"fastlane:{user.token}".encode()).decode()
    answer = anonymous.request("GET", "/v1/function/list", headers={"Authorization": header})
    assert answer.status == 200, answer
    wrong = "Basic " + base64.b64encode(b"fastlane:tfn_not-a-token-at-all").decode()
    assert anonymous.request("GET", "/v1/function/list",
                             headers={"Authorization": wrong}).status == 401
