"""fastlane's /healthcheck over DynamoDB, S3 and SQS, and HTTP Basic with a taskfn token as
the password (how fastlane's clients authenticate), against moto."""

from __future__ import annotations

import base64
import json

import pytest

from taskfn.services.tokens import TokenService, token_from_header
from tests.handlers.test_events import handler_module, invoke, load_event


def test_a_healthy_platform_answers_200_with_every_check_true(backend):
    answer = invoke("HealthcheckFunction", load_event("HealthcheckFunction"))
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"dynamodb": True, "s3": True, "sqs": True,
                                          "errors": []}


@pytest.mark.parametrize(("setting", "source"), [
    ("bucket_name", "s3"), ("task_queue_url", "sqs"), ("table_name", "dynamodb")])
def test_a_failing_dependency_is_500_and_named(backend, monkeypatch, setting, source):
    health = handler_module("HealthcheckFunction").health
    if setting == "table_name":
        monkeypatch.setattr(health.table, "name", "no-such-table")
    else:
        value = ("no-such-bucket" if setting == "bucket_name"
                 else health.settings.task_queue_url + "-gone")
        monkeypatch.setattr(health, "settings",
                            health.settings.model_copy(update={setting: value}))
    answer = invoke("HealthcheckFunction", load_event("HealthcheckFunction"))
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 500
    assert body[source] is False and [e["source"] for e in body["errors"]] == [source]
    assert all(body[other] for other in ("dynamodb", "s3", "sqs") if other != source)
    assert "no-such" not in json.dumps(body) and "-gone" not in json.dumps(body)  # no names


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_http_basic_carries_the_token_as_its_password(backend):
    tokens = TokenService.from_env()
    issued = tokens.create("alice", "user")
    assert tokens.authenticate(basic("any-name", issued.token)).user == "alice"
    assert tokens.authenticate(basic("", issued.token)).user == "alice"
    assert tokens.authenticate(basic("alice", "wrong-password-here")) is None


@pytest.mark.parametrize("header", ["Basic !!!not-base64", "Basic " + base64.b64encode(
    b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic "])
def test_a_malformed_basic_header_is_no_token(header):
    assert token_from_header(header) is None
