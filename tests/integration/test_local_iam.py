"""In the local stack every function signs as its own role, made from template.yaml's own
policies, and moto enforces them: the template's IAM is behaviour, not text."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from taskfn import aws
from taskfn.local.identities import acting_as
from taskfn.local.stack import LocalStack


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, admin_token="tfn_local-iam-admin-token-1", access_log=False) as up:
        yield up


MARKER = {"PK": {"S": "TASK#iam-marker"}, "SK": {"S": "TASK"}}  # a task item's keys


def put_marker(stack: LocalStack) -> None:
    aws.client("dynamodb").put_item(TableName=stack.provisioned.refs["Table"], Item=MARKER)


def query(stack: LocalStack, index: str, partition: str) -> None:
    aws.client("dynamodb").query(
        TableName=stack.provisioned.refs["Table"], IndexName=index,
        KeyConditionExpression="#pk = :pk", ExpressionAttributeNames={"#pk": f"{index}PK"},
        ExpressionAttributeValues={":pk": {"S": partition}})


def get_object(stack: LocalStack, key: str) -> None:
    try:
        aws.client("s3").get_object(Bucket=stack.provisioned.refs["Bucket"], Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchKey":  # allowed, and not there
            raise


def denied(call) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return False


def test_a_function_may_do_what_its_policies_allow(stack):
    with acting_as("CreateTaskFunction"):  # PutItem of task items
        put_marker(stack)
        aws.client("sqs").send_message(QueueUrl=stack.provisioned.refs["TaskQueue"],
                                       MessageBody="{}")


def test_a_function_may_not_do_what_its_policies_do_not_allow(stack):
    with acting_as("GetTaskFunction"):  # GetItem of task items: no writes, no queue
        assert denied(lambda: put_marker(stack))
        assert denied(lambda: aws.client("sqs").send_message(
            QueueUrl=stack.provisioned.refs["TaskQueue"], MessageBody="{}"))
        aws.client("dynamodb").get_item(TableName=stack.provisioned.refs["Table"], Key=MARKER)
        assert denied(lambda: query(stack, "GSI1", "OWNER#alice#TASK"))
    with acting_as("AuthorizerFunction"):  # token items by key only: no Query, no Scan
        assert denied(lambda: aws.client("dynamodb").scan(
            TableName=stack.provisioned.refs["Table"]))
        assert denied(lambda: query(stack, "GSI1", "OWNER#alice#TASK"))
    with acting_as("ListTasksFunction"):  # GSI1 only, not the other indexes
        query(stack, "GSI1", "OWNER#alice#TASK")
        assert denied(lambda: query(stack, "GSI4", "DOMAIN#d"))
    with acting_as("GetTaskResultFunction"):  # objects under tasks/ only
        get_object(stack, "tasks/none/result")
        assert denied(lambda: get_object(stack, "code/none.zip"))
    with acting_as("GetBuildFunction"):  # no S3 rights at all
        assert denied(lambda: aws.client("s3").get_object(
            Bucket=stack.provisioned.refs["Bucket"], Key="code/none.zip"))
    with acting_as("CellDesireTaskFunction"):  # the task queue only, not the callback queue
        assert denied(lambda: aws.client("sqs").send_message(
            QueueUrl=stack.provisioned.refs["CallbackQueue"], MessageBody="{}"))


def test_a_table_scoped_policy_does_not_reach_another_table(stack):
    with acting_as("CreateTaskFunction"):
        assert denied(lambda: aws.client("dynamodb").put_item(
            TableName="some-other-table", Item={"PK": {"S": "x"}, "SK": {"S": "x"}}))


def test_unsigned_requests_and_motos_own_api_are_refused(stack):
    for path, data in [("/", b"{}"), ("/moto-api/data.json", None),
                       ("/moto-api/reset-auth", b"inf"), ("/moto-api/reset", b"")]:
        request = urllib.request.Request(stack.moto_endpoint + path, data=data)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (403, 404), path
