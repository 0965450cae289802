"""Each function may do with the table and the bucket exactly what its code does.

Every handler is invoked against moto through scenarios that take each of its branches that
reach AWS, and every call its boto3 clients make meanwhile is recorded (at
BaseClient._make_api_call, so whichever store or client made it). The function's policies, as
SAM translates them into its role (the documents the local stack signs with,
taskfn.local.identities), must then

- allow every recorded call: action, resource (table, index, bucket key, queue, bus) and
  conditions (dynamodb:LeadingKeys) checked by a small IAM evaluator below, which fails closed
  on any condition it does not know; and
- grant no DynamoDB or S3 right that no recorded call needed: the (action, resource, leading
  key pattern) triples of the grants are those of the recorded calls, no more.

Recorded keys are generalised by the table's key layout (stores/table.py): upper-case segments
("TASK", "OWNER", "OPEN") belong to the layout, anything else is a value, so "TASK#<guid>"
needs "TASK#*" and "OWNER#alice#FUNC" needs "OWNER#*#FUNC" (scenario values are never all upper
case). S3 keys by their first segment: "tasks/<id>/result" needs "tasks/*".

A function without a scenario may hold no DynamoDB or S3 right at all, so a new function that
gets one needs a scenario here. SQS sends and EventBridge puts are checked to be allowed (which
queues each function may send to is pinned in tests/unit/test_template.py), Lambda rights are
pinned there too.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from taskfn import lifecycle, wiring
from taskfn.local.identities import function_policies
from taskfn.local.provision import ACCOUNT_ID, REGION, Provisioned, provision
from taskfn.models import (
    BuildRecord,
    BuildStatus,
    FunctionRecord,
    NodeRecord,
    TaskRecord,
    now_ns,
)
from taskfn.runtime.packaging import zip_from_source
from taskfn.services.builds import BuildService
from taskfn.services.cells import CellService, DesiredTask
from taskfn.services.functions import FunctionPatch, FunctionService
from taskfn.services.holds import HoldService
from taskfn.services.tasks import ANSWER_MAX_BYTES, TaskService
from taskfn.services.tokens import TokenService
from taskfn.settings import get_settings
from taskfn.stores.blobs import task_key, upload_key
from taskfn.stores.tags import TagRecord, TagStore
from tests.handlers.test_events import (  # noqa: F401 - seeded is a fixture
    BID,
    FID,
    SAMPLE_TOKEN,
    TEMPLATE,
    TID,
    handler_module,
    invoke,
    load_event,
    seeded,
)
from tests.integration.helpers import ALICE

SECOND = 1_000_000_000
GUID = "sample-task-1"  # the task the Cell API's sample events name
GONE = "6560f1a0ffffffffffffffff"  # a finished task with a large result
EXPIRED = "6560f1a0fffffffffffffffe"  # a finished task whose outputs have expired


# --- what the code calls -------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One AWS request as IAM sees it: an action on a resource, with the table's partition
    keys it touches (dynamodb:LeadingKeys)."""

    action: str
    resource: str
    leading_keys: tuple[str, ...] = ()
    # Other condition keys the request carries (ecs:cluster), as (key, value).
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Resources:
    """ARNs of the provisioned resources, by what requests name them with."""

    tables: dict[str, str]  # table name -> ARN
    hash_keys: dict[str, str]  # table name -> its partition key attribute
    buckets: dict[str, str]  # bucket name -> ARN
    queues: dict[str, str]  # queue URL -> ARN
    buses: dict[str, str]  # bus name -> ARN
    websocket: str = ""  # the WebSocket API's "<api id>/<stage>" (live logs)

    @classmethod
    def of(cls, provisioned: Provisioned) -> Resources:
        found: dict[str, dict[str, str]] = {"tables": {}, "hash_keys": {}, "buckets": {},
                                            "queues": {}, "buses": {}}
        for logical_id, resource in TEMPLATE.resources.items():
            ref, arn = provisioned.refs.get(logical_id), provisioned.attrs.get((logical_id, "Arn"))
            match resource["Type"]:
                case "AWS::DynamoDB::Table":
                    found["tables"][ref] = arn
                    (found["hash_keys"][ref],) = [
                        key["AttributeName"] for key in resource["Properties"]["KeySchema"]
                        if key["KeyType"] == "HASH"]
                case "AWS::S3::Bucket":
                    found["buckets"][ref] = arn
                case "AWS::SQS::Queue":
                    found["queues"][ref] = arn
                case "AWS::Events::EventBus":
                    found["buses"][ref] = arn
        return cls(**found, websocket=f"{provisioned.refs.get('WsApi')}/"
                                      f"{provisioned.refs.get('WsStage')}")

    def calls(self, service: str, operation: str, params: dict[str, Any]) -> list[Call]:
        """The IAM view of one boto3 call; an operation this does not know fails the test
        (teach it here, with the rights its requests need)."""
        match service, operation:
            case "dynamodb", "GetItem" | "UpdateItem" | "DeleteItem":
                return [self._item(operation, params["TableName"], params["Key"])]
            case "dynamodb", "PutItem":
                return [self._item(operation, params["TableName"], params["Item"])]
            case "dynamodb", "BatchGetItem":
                return [Call("dynamodb:BatchGetItem", self.tables[table],
                             tuple(self._partition(table, key) for key in request["Keys"]))
                        for table, request in params["RequestItems"].items()]
            case "dynamodb", "TransactWriteItems":
                # IAM checks each item as the single write it is (ConditionCheckItem for a
                # condition alone).
                actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                           "ConditionCheck": "ConditionCheckItem"}
                return [self._item(actions[kind], write["TableName"],
                                   write.get("Item") or write["Key"])
                        for item in params["TransactItems"] for kind, write in item.items()]
            case "dynamodb", "Query":
                arn = self.tables[params["TableName"]]
                if params.get("IndexName"):
                    arn += f"/index/{params['IndexName']}"
                return [Call("dynamodb:Query", arn, (_query_partition(params),))]
            case "s3", "GetObject" | "HeadObject" | "PutObject" | "DeleteObject":
                action = "GetObject" if operation == "HeadObject" else operation
                bucket = self.buckets[params["Bucket"]]
                return [Call(f"s3:{action}", f"{bucket}/{params['Key']}")]
            case "s3", ("CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload"
                        | "AbortMultipartUpload"):
                # IAM has no actions of their own for a multipart upload's steps but abort's.
                action = operation if operation == "AbortMultipartUpload" else "PutObject"
                bucket = self.buckets[params["Bucket"]]
                return [Call(f"s3:{action}", f"{bucket}/{params['Key']}")]
            case "s3", "ListObjectsV2":  # the health check's probe
                return [Call("s3:ListBucket", self.buckets[params["Bucket"]])]
            case "sqs", "SendMessage" | "SendMessageBatch":
                return [Call("sqs:SendMessage", self.queues[params["QueueUrl"]])]
            case "sqs", "GetQueueAttributes":  # the health check's probe, /status
                return [Call("sqs:GetQueueAttributes", self.queues[params["QueueUrl"]])]
            case "events", "PutEvents":
                return [Call("events:PutEvents", self.buses[entry["EventBusName"]])
                        for entry in params["Entries"]]
            case "events", "ListRules":  # no resource-level rights in IAM
                return [Call("events:ListRules", "*")]
            case "ecs", "RegisterTaskDefinition":  # no resource-level rights in IAM
                return [Call("ecs:RegisterTaskDefinition", "*")]
            case "ecs", "RunTask":
                family = params["taskDefinition"].rsplit("/", 1)[-1].split(":")[0]
                return [Call("ecs:RunTask", f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}:"
                             f"task-definition/{family}:1",
                             context=(("ecs:cluster", params["cluster"]),))]
            case "ecs", "StopTask":
                return [Call("ecs:StopTask", params["task"],
                             context=(("ecs:cluster", params["cluster"]),))]
            case "logs", "GetLogEvents":
                return [Call("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:"
                             f"log-group:{params['logGroupName']}:log-stream:"
                             f"{params['logStreamName']}")]
            case "apigatewaymanagementapi", ("PostToConnection" | "DeleteConnection"
                                             | "GetConnection"):  # live logs' pump
                method = {"PostToConnection": "POST", "DeleteConnection": "DELETE",
                          "GetConnection": "GET"}[operation]
                return [Call("execute-api:ManageConnections",
                             f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.websocket}/"
                             f"{method}/@connections/{params['ConnectionId']}")]
            case "scheduler", ("CreateSchedule" | "UpdateSchedule" | "DeleteSchedule"
                               | "GetSchedule"):  # schedules (services/schedules.py)
                return [Call(f"scheduler:{operation}", f"arn:aws:scheduler:{REGION}:"
                             f"{ACCOUNT_ID}:schedule/{params['GroupName']}/{params['Name']}")]
        raise AssertionError(f"{service}.{operation}: which rights does it need? Add it here.")

    def _item(self, operation: str, table: str, key: dict[str, Any]) -> Call:
        return Call(f"dynamodb:{operation}", self.tables[table], (self._partition(table, key),))

    def _partition(self, table: str, key: dict[str, Any]) -> str:
        return key[self.hash_keys[table]]["S"]


def _query_partition(params: dict[str, Any]) -> str:
    """The partition a Query reads: `<key> = :value` first in its key condition."""
    match = re.match(r"\s*(#?\w+)\s*=\s*(:\w+)", params["KeyConditionExpression"])
    assert match, params["KeyConditionExpression"]
    return params["ExpressionAttributeValues"][match.group(2)]["S"]


class Recorder:
    """Every call any boto3 client makes while `recording` (in any thread)."""

    def __init__(self, resources: Resources):
        self.resources = resources
        self.calls: list[Call] = []
        self.unknown: list[str] = []  # calls this test cannot say the rights of
        self._on = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
        """Every request's parameters as the client serialises them, presigned ones included
        (a presigned URL acts with the rights of the role that signed it)."""
        emit, call = BaseClient._emit_api_params, BaseClient._make_api_call
        recorder = self

        def emitted(client: BaseClient, api_params: dict, operation_model: Any,
                    context: dict) -> dict:
            params = emit(client, api_params, operation_model, context)
            if recorder._on:
                service = client.meta.service_model.service_name
                try:
                    recorder.keep(recorder.resources.calls(service, operation_model.name,
                                                           params))
                except (AssertionError, KeyError) as error:  # the handler may catch it
                    with recorder._lock:
                        recorder.unknown.append(f"{service}.{operation_model.name}: {error!r}")
            return params

        def answered(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            try:
                return call(client, operation, params)
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if recorder._on and client.meta.service_model.service_name == "s3" and (
                        code in ("NoSuchKey", "404", "NotFound")):
                    # S3 answers "no such key" only to a caller that may list the bucket
                    # (AccessDenied otherwise): code that saw it needs that right for AWS
                    # to answer it alike.
                    bucket = recorder.resources.buckets[params["Bucket"]]
                    recorder.keep([Call("s3:ListBucket", bucket)])
                raise

        monkeypatch.setattr(BaseClient, "_emit_api_params", emitted)
        monkeypatch.setattr(BaseClient, "_make_api_call", answered)
        yield self

    def keep(self, calls: list[Call]) -> None:
        with self._lock:
            self.calls.extend(calls)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False


# --- what the template grants --------------------------------------------------------------

Right = tuple[str, str, str | None]  # (action, resource pattern, leading key pattern or None)
LEADING_KEYS = "dynamodb:LeadingKeys"
KEY_OPERATORS = ("ForAllValues:StringLike", "ForAllValues:StringEquals")


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def generalised_key(key: str) -> str:
    """The key layout's pattern of a partition key: its upper-case segments kept, values *."""
    return "#".join(part if re.fullmatch(r"[A-Z]+", part) else "*" for part in key.split("#"))


def needed(call: Call) -> set[Right]:
    """What a call needs, as a grant would say it (DynamoDB and S3 only)."""
    if call.action.startswith("dynamodb:"):
        return {(call.action, call.resource, generalised_key(key)) for key in call.leading_keys}
    if call.action.startswith("s3:"):
        bucket, _, key = call.resource.partition("/")
        return {(call.action, f"{bucket}/{key.split('/')[0]}/*" if key else bucket, None)}
    return set()


def statements(documents: list[dict]) -> list[dict]:
    found = [statement for document in documents for statement in _listed_statements(document)]
    for statement in found:
        assert statement["Effect"] == "Allow", statement  # no Deny to reason about
        assert not {"NotAction", "NotResource", "Principal"} & set(statement), statement
    return found


def _listed_statements(document: dict) -> list[dict]:
    listed = document["Statement"]
    return [listed] if isinstance(listed, dict) else listed


def granted(documents: list[dict]) -> set[Right]:
    """The DynamoDB and S3 rights the documents grant, as triples."""
    rights: set[Right] = set()
    for statement in statements(documents):
        # "*" too: a wildcard is a right no call needs
        actions = [action for action in _listed(statement["Action"])
                   if action.split(":")[0].lower() in ("dynamodb", "s3", "*")]
        if not actions:
            continue
        patterns: list[str | None] = [None]
        condition = statement.get("Condition")
        if condition is not None:
            ((operator, values),) = condition.items()
            assert operator in KEY_OPERATORS and set(values) == {LEADING_KEYS}, condition
            patterns = list(_listed(values[LEADING_KEYS]))
        rights |= {(action, resource, pattern) for action in actions
                   for resource in _listed(statement["Resource"]) for pattern in patterns}
    return rights


def allows(documents: list[dict], call: Call) -> bool:
    """IAM's answer for `call` under these (Allow-only) documents."""
    return any(_statement_allows(statement, call) for statement in statements(documents))


def _statement_allows(statement: dict, call: Call) -> bool:
    if not any(fnmatch.fnmatchcase(call.action.lower(), action.lower())
               for action in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(call.resource, resource)
               for resource in _listed(statement["Resource"])):
        return False
    for operator, values in (statement.get("Condition") or {}).items():
        for key, expected in values.items():
            if operator == "ArnEquals" and key in dict(call.context):
                if dict(call.context)[key] not in _listed(expected):
                    return False
                continue
            if key != LEADING_KEYS or operator not in KEY_OPERATORS:
                return False  # a condition this evaluator does not know: not allowed
            like = operator.endswith("StringLike")
            if not all(any(fnmatch.fnmatchcase(value, pattern) if like else value == pattern
                           for pattern in _listed(expected)) for value in call.leading_keys):
                return False
    return True


_policies: dict[str, list[dict]] = {}


@pytest.fixture
def rights(backend) -> tuple[Resources, dict[str, list[dict]]]:
    """The provisioned resources (provisioning again reuses them) and every function's policy
    documents as the local stack gives its role (SAM's translation, resolved)."""
    provisioned = provision(TEMPLATE)
    if not _policies:
        _policies.update(function_policies(TEMPLATE, provisioned))
    return Resources.of(provisioned), _policies


# --- the scenarios: every branch of a handler that reaches AWS --------------------------------


class Run:
    """Invokes one function's handler with recording on; seeding happens outside."""

    def __init__(self, function_id: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch):
        self.function_id = function_id
        self.recorder = recorder
        self.monkeypatch = monkeypatch

    def __call__(self, event: dict | None = None, **changes: Any) -> Any:
        event = copy.deepcopy(event if event is not None else load_event(self.function_id))
        if "body" in changes:
            body = changes.pop("body")
            event["body"] = body if isinstance(body, str) else json.dumps(body)
        if changes:
            event["requestContext"]["authorizer"]["lambda"].update(changes)
        handler_module(self.function_id)  # imported (and its clients built) outside recording
        with self.recorder.recording():
            return invoke(self.function_id, event)

    def module(self) -> Any:
        return handler_module(self.function_id)

    def http(self, status: int, **kwargs: Any) -> dict:
        answer = self(**kwargs)
        assert answer["statusCode"] == status, answer
        return answer

    def bbs(self, **kwargs: Any) -> dict:
        body = json.loads(self.http(200, **kwargs)["body"])
        assert body["error"] is None, body
        return body

    def messages(self, *task_ids: str) -> dict:
        """An SQS event of the executor's or the callback function's, one record a task."""
        event = load_event(self.function_id)
        template = event["Records"][0]
        event["Records"] = [{**copy.deepcopy(template), "messageId": f"m-{number}",
                             "body": json.dumps({"taskId": task_id})}
                            for number, task_id in enumerate(task_ids)]
        return event


Scenario = Callable[[Run], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(*function_ids: str) -> Callable[[Scenario], Scenario]:
    def register(body: Scenario) -> Scenario:
        for function_id in function_ids:
            SCENARIOS[function_id] = body
        return body

    return register


def desire(guid: str = GUID, *, steps: tuple[lifecycle.Transition, ...] = (),
           **fields: Any) -> None:
    """A Cell API task of alice's (for a cell tagged gpu unless it names a function), and the
    shared node "cell-1" the cell events act as."""
    wiring.nodes().put_new(NodeRecord(hash="cell-1", owner="ops", shared=True, created_at=1))
    if "function_id" not in fields:
        fields.setdefault("placement_tags", ("gpu",))
    CellService.from_env().desire(ALICE, DesiredTask(task_guid=guid, domain="sample", **fields))
    for step in steps:
        wiring.tasks().apply(guid, step, has_callback=bool(fields.get("completion_callback_url")))


def function_with(code: str, function_id: str) -> FunctionRecord:
    function = FunctionRecord(id=function_id, owner="alice", name=f"f{function_id[-4:]}",
                              created_at=now_ns())
    wiring.functions().put_new(function)
    BuildService.from_env().create_from_source(ALICE, function, code)
    return wiring.functions().get(function_id)


def finish(task_id: str, **extra: Any) -> None:
    tasks = wiring.tasks()
    tasks.apply(task_id, lifecycle.start("cell-t", 4))
    tasks.apply(task_id, lifecycle.complete("cell-t", 5, failed=False, extra={
        "response_status": 200, "response_headers": {"Content-Type": "text/plain"}, **extra}))


STARTED = (lifecycle.start("cell-1", 2),)
COMPLETED = (*STARTED, lifecycle.complete("cell-1", 3, failed=False))


@scenario("AuthorizerFunction")
def _authorizer(run: Run) -> None:
    # Tokens no earlier test used: the authorizer keeps what it learnt of one for a while.
    known = TokenService.from_env().create("alice", "user").token
    for token, user in ((known, "alice"), (f"tfn_unknown-{secrets.token_hex(8)}", "")):
        event = load_event("AuthorizerFunction")
        event["headers"]["authorization"] = f"Bearer {token}"
        assert run(event)["context"]["user"] == user


@scenario("CreateTokenFunction")
def _created(run: Run) -> None:
    run.http(201)  # CreateFunction's sample has source: its first build runs too


@scenario("CreateBuildFunction")
def _create_build(run: Run) -> None:
    run.http(201)
    # From an upload (POST /v1/build/{id}/upload): its size, the archive, then it is removed;
    # an upload that is not there is a 404.
    uploaded, missing = "6560f1a01111111111111111", "6560f1a02222222222222222"
    wiring.blobs().put(upload_key(FID, uploaded), zip_from_source(
        "def handler(event, context):\n    return 1\n"), "application/zip")
    for upload, status in ((uploaded, 201), (missing, 404)):
        event = load_event("CreateBuildFunction")
        event.update(body="", isBase64Encoded=False, rawQueryString=f"upload={upload}",
                     queryStringParameters={"upload": upload})
        answer = run(event)
        assert answer["statusCode"] == status, answer
    assert wiring.blobs().size(upload_key(FID, uploaded)) is None


@scenario("CreateBuildUploadFunction")
def _create_build_upload(run: Run) -> None:
    answer = json.loads(run.http(201)["body"])
    assert upload_key(FID, answer["uploadId"]) in answer["url"]


@scenario("GetBuildFunction", "GetTaskFunction")
def _read(run: Run) -> None:
    run.http(200)


def with_query(function_id: str, **params: str) -> dict:
    event = load_event(function_id)
    event["queryStringParameters"] = params or None
    event["rawQueryString"] = "&".join(f"{name}={value}" for name, value in params.items())
    return event


@scenario("ListBuildsFunction")
def _list_builds(run: Run) -> None:
    # One function's builds (its item, GSI2, the page's builds), then the caller's (GSI1) on
    # a page that leaves a build after it to count.
    for number in range(2):
        wiring.builds().put(BuildRecord(id=f"6560f1a0121212121212121{number}", owner="alice",
                                        function_id=FID, status=BuildStatus.FAILED,
                                        created_at=now_ns()))
    for params in ({"functionId": FID}, {"limit": "3"}):
        answer = run(with_query(run.function_id, **params))
        assert answer["statusCode"] == 200, answer
        assert json.loads(answer["body"])["totalCount"] == 4


@scenario("ListTasksFunction")
def _list_tasks(run: Run) -> None:
    # The caller's tasks (GSI1, a status filter on it), then one function's (its item, its
    # GSI2 partition, the page's tasks by key).
    wiring.tasks().put_new(TaskRecord(task_guid=GONE, owner="alice", function_id=FID,
                                      created_at=now_ns(), updated_at=now_ns()))
    for params in ({"status": "pending"}, {"functionId": FID}):
        answer = run(with_query(run.function_id, **params))
        assert answer["statusCode"] == 200, answer
        assert [task["id"] for task in json.loads(answer["body"])] == [GONE]


TAG_ID = "6560f1a0abababababababab"  # the tag the sample events name
OTHER_TAG = "6560f1a0acacacacacacacac"


def seed_tag(tag_id: str = TAG_ID, name: str = "sample") -> str:
    """A tag of alice's, counted as a create counts it."""
    store = TagStore(wiring.table())
    assert store.reserve("alice", 500)
    store.put_new(TagRecord(id=tag_id, owner="alice", name=name, color="#00ff80",
                            created_at=now_ns()))
    return tag_id


def tag_sample_function(*tag_ids: str) -> None:
    FunctionService.from_env().update(ALICE, FID, FunctionPatch(tags=tag_ids))


def held_task(task_id: str) -> None:
    """A task of the sample function, which is paused: started by a cell, then held."""
    wiring.functions().set_paused(FID, "alice", True)
    wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner="alice", function_id=FID,
                                      created_at=now_ns(), updated_at=now_ns()))
    started = wiring.tasks().apply(task_id, lifecycle.start("cell-1", now_ns()))
    assert HoldService.from_env().hold(TaskRecord.model_validate(started.task), "cell-1")


@scenario("CreateFunctionFunction")
def _create_function(run: Run) -> None:
    run.http(201)  # the sample has source: its first build runs too
    seed_tag()  # with tags: the owner's read, a membership written beside the function
    run.http(201, body={"name": "tagged", "tag": [TAG_ID]})


@scenario("GetFunctionFunction")
def _get_function(run: Run) -> None:
    seed_tag()
    tag_sample_function(TAG_ID)
    view = json.loads(run.http(200)["body"])
    assert view["tags"] == [{"id": TAG_ID, "name": "sample", "color": "#00ff80"}], view
    assert view["metrics"]["pendingTasks"] == 1, view  # the sample task


@scenario("ListFunctionsFunction")
def _list_functions(run: Run) -> None:
    # The caller's functions, one tagged (its tags read), then by that tag (its index, the
    # functions by key).
    seed_tag()
    tag_sample_function(TAG_ID)
    for params in ({}, {"tag": TAG_ID}):
        answer = run(with_query(run.function_id, **params))
        assert answer["statusCode"] == 200, answer
        assert [item["id"] for item in json.loads(answer["body"])] == [FID]


@scenario("DeleteFunctionFunction")
def _deleted(run: Run) -> None:
    # With a tag and a task held for its resume: the memberships, the counters and the
    # markers go; the task is released and sent.
    seed_tag()
    tag_sample_function(TAG_ID)
    held_task(GONE)
    seed_schedule()  # its schedules go too, Scheduler's first
    run.http(204)
    assert wiring.tasks().get(GONE).held_at == 0


@scenario("UpdateFunctionFunction")
def _update_function(run: Run) -> None:
    run.http(204)  # name and description: one conditional write
    seed_tag()
    seed_tag(OTHER_TAG, "other")
    tag_sample_function(TAG_ID)
    run.http(204, body={"tag": [OTHER_TAG]})  # a membership written, the old one deleted
    assert wiring.functions().get(FID).tags == [OTHER_TAG]


@scenario("TogglePauseFunction")
def _toggle_pause(run: Run) -> None:
    run.http(204)
    assert wiring.functions().get(FID).paused
    held_task(GONE)
    run.http(204)  # resumed: the held task released (its marker read and deleted) and sent
    assert wiring.tasks().get(GONE).held_at == 0 and not wiring.functions().get(FID).paused


@scenario("GetCapabilitiesFunction", "ListTagsFunction")
def _read_200(run: Run) -> None:
    run.http(200)


@scenario("SetCapabilitiesFunction")
def _set_capabilities(run: Run) -> None:
    run.http(204)
    assert wiring.functions().get(FID).capabilities.memSize == 1024


@scenario("CreateTagFunction")
def _create_tag(run: Run) -> None:
    run.http(201)


@scenario("DeleteTagFunction")
def _delete_tag(run: Run) -> None:
    seed_tag()
    run.http(204)


@scenario("UpdateTagFunction")
def _update_tag(run: Run) -> None:
    seed_tag()
    run.http(204)
    run.http(400, body={"color": "red"})  # refused: the tag read, so that it is not a 404


def with_key(event: dict, key: str) -> dict:
    event["headers"]["idempotency-key"] = key
    return event


@scenario("CreateTaskFunction")
def _create_task(run: Run) -> None:
    small = json.loads(run.http(201)["body"])["id"]
    large = json.loads(run.http(201, body={"blob": "x" * 40_000})["body"])["id"]
    assert not wiring.tasks().get(small).input_key and wiring.tasks().get(large).input_key
    # With an Idempotency-Key: claimed, then a retry finds the claim and reads the task.
    keyed = [run(with_key(load_event(run.function_id), "k-1")) for _ in range(2)]
    assert keyed[0]["statusCode"] == keyed[1]["statusCode"] == 201
    assert keyed[0]["body"] == keyed[1]["body"]


def replace_task(event: dict, task_id: str, **outputs: str) -> dict:
    """A new finished task of alice's with these outputs, and `event` asking for it."""
    wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner="alice", function_id=FID,
                                      created_at=now_ns(), updated_at=now_ns()))
    finish(task_id, **outputs)
    event["pathParameters"] = {"id": task_id}
    event["rawPath"] = event["rawPath"].replace(TID, task_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


def expired_output(run: Run, **keys: str) -> None:
    """A task whose outputs S3's lifecycle rule already removed: the API's 404."""
    removed = {field: task_key(EXPIRED, "removed") for field in keys}
    answer = run(replace_task(load_event(run.function_id), EXPIRED, **removed))
    assert (answer["statusCode"], json.loads(answer["body"])["message"]) == (
        404, "task output expired"), answer


@scenario("GetTaskResultFunction")
def _task_result(run: Run) -> None:
    key = task_key(TID, "result")
    wiring.blobs().put(key, b"kept in S3", "text/plain")
    finish(TID, response_key=key)
    assert run.http(200)["body"] == "kept in S3"
    # One too large for a Lambda answer: a redirect to a presigned GET, signed by this role.
    large = task_key(GONE, "result")
    wiring.blobs().put(large, b"r" * (ANSWER_MAX_BYTES + 1), "text/plain")
    event = load_event(run.function_id)
    redirected = run(replace_task(event, GONE, response_key=large))
    assert redirected["statusCode"] in (302, 303, 307) and redirected["headers"]["Location"]
    expired_output(run, response_key="")


@scenario("GetTaskLogsFunction")
def _task_logs(run: Run) -> None:
    keys = {stream: task_key(TID, f"{stream}.txt") for stream in ("stdout", "stderr")}
    for stream, key in keys.items():
        wiring.blobs().put(key, f"{stream} kept in S3".encode(), "text/plain")
    finish(TID, response_body="done", stdout_key=keys["stdout"], stderr_key=keys["stderr"])
    assert json.loads(run.http(200)["body"])["stdout"] == "stdout kept in S3"
    expired_output(run, stdout_key="")


@scenario("ExportTasksCsvFunction")
def _export_tasks_csv(run: Run) -> None:
    # Small, answered inline: the function read, its GSI2 keys, the tasks, bodies kept in
    # tasks/ (one removed already by S3's lifecycle rule: an empty Body, and S3 says so only
    # to a reader that may list the bucket).
    kept, removed = task_key(GONE, "result"), task_key(EXPIRED, "result")
    wiring.blobs().put(kept, b"kept in S3", "text/plain")
    for task_id, key in ((GONE, kept), (EXPIRED, removed)):
        wiring.tasks().put_new(TaskRecord(task_guid=task_id, owner="alice", function_id=FID,
                                          created_at=now_ns(), updated_at=now_ns()))
        finish(task_id, response_key=key)
    inline = run.http(200)
    assert "kept in S3" in inline["body"] and inline["headers"]["Content-Type"].startswith(
        "text/csv")
    # Large (the inline bound lowered): a multipart upload to exports/, answered with a 303 to
    # the presigned GET this role signs.
    run.monkeypatch.setattr(run.module().exports, "inline_max_bytes", 10)
    assert "/exports/" in run.http(303)["headers"]["Location"]


@scenario("CellDesireTaskFunction")
def _desire(run: Run) -> None:
    run.bbs()  # the sample runs alice's function in the built-in executor: read, put, send
    run.bbs(body={"task_guid": "tagged-1", "domain": "sample",
                  "task_definition": {"placement_tags": ["gpu"]}})
    keyed = {"task_guid": "keyed-1", "domain": "sample",
             "task_definition": {"placement_tags": ["gpu"]}}
    for _ in range(2):  # claimed, then the retry reads the task it made
        event = with_key(load_event(run.function_id), "k-1")
        event["body"] = json.dumps(keyed)
        assert json.loads(run(event)["body"])["error"] is None


@scenario("CellListTasksFunction")
def _list_cell_tasks(run: Run) -> None:
    desire()
    assert len(run.bbs()["tasks"]) == 1
    run.bbs(body={"domain": "sample", "cell_id": "cell-1"}, user="cell-1", scope="cell")


@scenario("CellGetTaskFunction", "CellStartTaskFunction")
def _pending_task(run: Run) -> None:
    desire()
    run.bbs()


@scenario("CellCancelTaskFunction", "CellFailTaskFunction")
def _finish_pending_task(run: Run) -> None:
    desire(function_id=FID, placement_tags=("gpu",))  # finished: its function's counters
    run.bbs()


@scenario("CellRejectTaskFunction")
def _reject(run: Run) -> None:
    desire()
    run.bbs()
    # At the retry limit: failed, and counted for its function.
    desire("at-limit", function_id=FID, placement_tags=("gpu",),
           steps=(lifecycle.reject("r", 1),) * 3)
    run.bbs(body={"task_guid": "at-limit", "rejection_reason": "no room"})
    assert wiring.tasks().get("at-limit").failed


@scenario("CellHeartbeatTaskFunction")
def _heartbeat(run: Run) -> None:
    desire(steps=STARTED)
    run.bbs()


@scenario("CellResolvingTaskFunction")
def _resolving(run: Run) -> None:
    desire(steps=COMPLETED)
    run.bbs()


@scenario("CellDeleteTaskFunction")
def _delete_task(run: Run) -> None:
    desire(steps=(*COMPLETED, lifecycle.resolving(4)))
    run.bbs()
    assert wiring.tasks().get(GUID) is None


@scenario("CellCompleteTaskFunction")
def _complete(run: Run) -> None:
    desire(function_id=FID, placement_tags=("gpu",), steps=STARTED)
    run.bbs()
    # A failure with retries left: read (consistently), back to Pending, sent to the queue.
    desire("will-retry", function_id=FID, retries=1, steps=STARTED)
    run.bbs(body={"task_guid": "will-retry", "cell_id": "cell-1", "failed": True,
                  "failure_reason": "out of disk", "result": ""})
    assert wiring.tasks().get("will-retry").state == "Pending"


@scenario("ExecutorFunction")
def _executor(run: Run) -> None:
    # The sample task was created without its code fixed: the function is read for it.
    assert run(run.messages(TID)) == {"batchItemFailures": []}
    # A large input, response and output: from and to tasks/.
    large = function_with("def handler(event, context):\n    print('o' * 5000)\n"
                          "    return 'r' * 40000\n", "6560f1a0dddddddddddddddd")
    task = TaskService.from_env().create(ALICE, large.id, body={"blob": "i" * 40_000},
                                         query={}, size=40_100)
    assert task.input_key
    # A failure with a retry left: back to Pending and sent to the queue again.
    failing = function_with("def handler(event, context):\n    raise ValueError('no')\n",
                            "6560f1a0eeeeeeeeeeeeeeee")
    desire("will-retry", function_id=failing.id, retries=1)
    assert run(run.messages(task.task_guid, "will-retry")) == {"batchItemFailures": []}
    done = wiring.tasks().get(task.task_guid)
    assert done.response_key and done.stdout_key and not done.failed
    assert wiring.tasks().get("will-retry").state == "Pending"
    # A task of a paused function: held (its marker written), then, resumed meanwhile,
    # released by the executor itself (the marker deleted).
    paused = function_with("def handler(event, context):\n    return 1\n",
                           "6560f1a0ffffffffffff0001")
    held = TaskService.from_env().create(ALICE, paused.id, body=None, query={}, size=0)
    resume = {"paused": False}
    wiring.table().update(f"FUNC#{paused.id}", "FUNC", set_values={"paused": True},
                          condition="attribute_exists(PK)")
    functions = run.module().executor.holds.functions
    real_get = functions.get

    consistent_reads = []

    def resumed_after_the_hold(function_id: str, *, consistent: bool = False):
        function = real_get(function_id, consistent=consistent)
        consistent_reads.append(consistent)
        if consistent_reads.count(True) >= 2:  # the read after the hold sees the resume
            return function.model_copy(update=resume)
        return function

    run.monkeypatch.setattr(functions, "get", resumed_after_the_hold)
    assert run(run.messages(held.task_guid)) == {"batchItemFailures": []}
    assert wiring.tasks().get(held.task_guid).state == "Pending"
    # A fastlane job's run: its image's task definition registered (and kept), its container
    # started on the jobs' cluster, its timeout watched.
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    job = JobService.from_env().enqueue(ALICE, "rights", parse_enqueue(
        b'{"image": "alpine", "command": "echo hi"}'), request_ip="203.0.113.10")
    # moto's RunTask fails on Fargate's resource arithmetic (a 500): the task definition is
    # registered in moto, the run itself answered here (its right is checked as granted).
    ecs = run.module().executor.containers().runtime.ecs
    run.monkeypatch.setattr(ecs, "run_task", lambda **_: {"tasks": [{"taskArn": (
        "arn:aws:ecs:us-east-1:123456789012:task/jobs/0123456789abcdef")}]})
    assert run(run.messages(job.queue_job_id)) == {"batchItemFailures": []}
    assert wiring.tasks().get(job.queue_job_id).cell_id == f"container:{job.execution_id}"


@scenario("ConvergerFunction")
def _converger(run: Run) -> None:
    now = now_ns()
    run.monkeypatch.setattr(run.module().converger, "now", lambda: now)
    ago = lambda seconds: now - int(seconds * SECOND)  # noqa: E731
    url = {"completion_callback_url": "https://example.com/done"}
    # Each step of a pass once (the sample task, created at 3 ns, expires).
    desire("to-dispatch", function_id=FID)  # written, then lost by the queue 40 s ago
    wiring.table().update("TASK#to-dispatch", "TASK", set_values={"updated_at": ago(40)},
                          condition="attribute_exists(PK)")
    desire("lost-cell", function_id=FID, retries=1,
           steps=(lifecycle.start("cell-1", ago(200)),))
    desire("to-delete", steps=(lifecycle.start("cell-1", ago(300)),
                               lifecycle.complete("cell-1", ago(200), failed=False)), **url)
    desire("to-kick", steps=(lifecycle.start("cell-1", ago(100)),
                             lifecycle.complete("cell-1", ago(50), failed=False)), **url)
    report = run()
    assert (report["expired"], report["dispatched"], report["retried"], report["deleted"],
            report["kicked"]) == (1, 1, 1, 1, 1), report


@scenario("CallbackEnqueueFunction")
def _enqueue(run: Run) -> None:
    assert run() == {"queued": 1}


@scenario("CallbackFunction")
def _deliver(run: Run) -> None:
    delivery = run.module().delivery
    strict = delivery.settings.model_copy(update={"allow_private_callbacks": False})
    run.monkeypatch.setattr(delivery, "settings", strict)
    # Read, Resolving, and deleted: the URL is refused (a private address), which deletes
    # the task as an answer would, without a server.
    desire(steps=COMPLETED, completion_callback_url="http://127.0.0.1:9/done")
    assert run(run.messages(GUID)) == {"batchItemFailures": []}
    assert wiring.tasks().get(GUID) is None


@scenario("EventsFunction")
def _events(run: Run) -> None:
    # A rule on the bus, so that the events go out (none are put while no rule listens).
    boto3.client("events").put_rule(Name="watch", EventBusName=os.environ["EVENT_BUS_NAME"],
                                    EventPattern='{"source": ["taskfn.tasks"]}')
    assert run() == {"records": 2, "events": 2, "on_bus": 2}


@scenario("TaskEventsFunction")
def _task_events(run: Run) -> None:
    run.http(200)


# --- public endpoints (services/endpoints.py) ------------------------------------------------


def seed_public_endpoint(**fields: Any) -> None:
    """The endpoint the sample events name, alice's, on the sample function."""
    from taskfn.stores.endpoints import EndpointRecord, EndpointStore
    from tests.handlers.test_endpoint_handlers import EID

    EndpointStore(wiring.table()).put_new(EndpointRecord(
        id=EID, owner="alice", function_id=FID, created_at=now_ns(), **fields))


@scenario("CreateEndpointFunction")
def _create_endpoint(run: Run) -> None:
    seed_tag()  # with tags: the owner's read
    run.http(201)
    run.http(201, body={"tag": [TAG_ID]})


@scenario("UpdateEndpointFunction")
def _update_endpoint(run: Run) -> None:
    seed_tag()
    seed_public_endpoint()
    run.http(204)
    run.http(204, body={"tag": [TAG_ID]})
    run.http(400, body={"dailyLimit": -5})  # refused: the endpoint read, so not a 404


@scenario("GetEndpointFunction", "GetEndpointMetricsFunction", "DeleteEndpointFunction")
def _endpoint_read(run: Run) -> None:
    seed_tag()
    seed_public_endpoint(tags=[TAG_ID])
    answer = run()
    assert answer["statusCode"] in (200, 204), answer


@scenario("ListEndpointsFunction")
def _list_endpoints(run: Run) -> None:
    # One function's (its item, GSI2), then the caller's (GSI1); a tagged one's tags read.
    seed_tag()
    seed_public_endpoint(tags=[TAG_ID])
    for params in ({"functionId": FID}, {}):
        answer = run(with_query(run.function_id, **params))
        assert json.loads(answer["body"])["totalCount"] == 1, answer


@scenario("CallEndpointFunction")
def _call_endpoint(run: Run) -> None:
    # Small and large inputs (to tasks/), then the daily limit refused (its conditional ADD).
    seed_public_endpoint(daily_limit=2)
    run.http(201)
    run.http(201, body={"blob": "x" * 40_000})
    run.http(429)


@scenario("HealthcheckFunction")
def _healthcheck(run: Run) -> None:
    body = json.loads(run.http(200)["body"])
    assert body == {"dynamodb": True, "s3": True, "sqs": True, "errors": []}


@scenario("GetPublicResultFunction")
def _public_result(run: Run) -> None:
    # A public call's task, its response in tasks/: read without a token, then with the
    # owner's (its item by hash); an expired output lists the bucket's answer (404).
    key = task_key(GONE, "result")
    wiring.blobs().put(key, b"kept in S3", "text/plain")
    event = load_event(run.function_id)
    wiring.tasks().put_new(TaskRecord(task_guid=GONE, owner="alice", function_id=FID,
                                      endpoint_id="6560f1a0eeeeeeeeeeeeeeee",
                                      created_at=now_ns(), updated_at=now_ns()))
    tasks = wiring.tasks()
    tasks.apply(GONE, lifecycle.start("cell-t", now_ns()))
    tasks.apply(GONE, lifecycle.complete("cell-t", now_ns(), failed=False, extra={
        "response_status": 200, "response_key": key}))
    event["pathParameters"] = {"id": GONE}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/gc/{GONE}/result"
    assert run(copy.deepcopy(event))["body"] == "kept in S3"
    # A token of this test's own: the handler's module keeps what it learnt of tokens (as
    # the authorizer does), and another test may have shown it the sample token already.
    token = TokenService.from_env().create("alice", "user").token
    event["headers"]["authorization"] = f"Bearer {token}"
    assert run(copy.deepcopy(event))["body"] == "kept in S3"
    expired = replace_task(load_event(run.function_id), EXPIRED,
                           response_key=task_key(EXPIRED, "removed"))
    expired["rawPath"] = expired["requestContext"]["http"]["path"] = f"/gc/{EXPIRED}/result"
    expired["headers"]["authorization"] = token
    answer = run(expired)
    assert (answer["statusCode"], json.loads(answer["body"])["message"]) == (
        404, "task output expired"), answer


# --- schedules (services/schedules.py) -------------------------------------------------------

SID = "6560f1a0dddddddddddddddd"  # the schedule the sample events name


def seed_schedule(payload: bytes = b"") -> None:
    """alice's schedule of the sample function, its Scheduler schedule too, and a payload
    (one above the inline bound puts the runs' inputs in tasks/)."""
    from taskfn import cron
    from taskfn.services.schedules import ScheduleService
    from taskfn.stores.schedules import ScheduleRecord

    service = ScheduleService.from_env()
    record = ScheduleRecord(id=SID, owner="alice", function_id=FID, cron="*/15 * * * *",
                            timezone="Europe/Berlin", created_at=now_ns())
    service.store.put_new(record)
    service.scheduler.create(record, cron.to_eventbridge(record.cron))
    if payload:
        service.set_payload(ALICE, SID, payload, {}, "text/plain")


@scenario("CreateScheduleFunction")
def _create_schedule(run: Run) -> None:
    # Created; then Scheduler refusing: the record removed again.
    run.http(201)

    def refused(*_: Any) -> None:
        raise RuntimeError("Scheduler refused")

    run.monkeypatch.setattr(run.module().schedules.scheduler, "create", refused)
    run.http(500)


@scenario("ListSchedulesFunction")
def _list_schedules(run: Run) -> None:
    # The owner's partition, then one function's (its item, its GSI2 partition, the page).
    seed_schedule()
    for params in ({}, {"functionId": FID}):
        answer = run(with_query(run.function_id, **params))
        assert json.loads(answer["body"])["totalCount"] == 1, answer


@scenario("GetScheduleFunction", "UpdateScheduleFunction",
          "SetSchedulePayloadFunction", "DeleteScheduleFunction")
def _schedule_own(run: Run) -> None:
    seed_schedule()
    answer = run()
    assert answer["statusCode"] in (200, 204), answer


@scenario("TryScheduleFunction")
def _try_schedule(run: Run) -> None:
    seed_schedule(b"x" * 40_000)
    run.http(201)


@scenario("RunScheduleFunction")
def _run_schedule(run: Run) -> None:
    # Twice the same fire time: the second finds the first's task (its read).
    seed_schedule(b"x" * 40_000)
    first, again = run(), run()
    assert first["taskId"] and first == again
    # A fastlane job's one-shot: its schedule and job read, the run written with its
    # pointer and the job's count; the schedule then removed and the job unscheduled.
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    enqueued = JobService.from_env().enqueue(ALICE, "later", parse_enqueue(
        b'{"image": "alpine", "command": "true", "startIn": "5m"}'), request_ip="1.2.3.4")
    fired = run({"scheduleId": enqueued.queue_job_id, "owner": "alice", "kind": "job",
                 "scheduledTime": "2026-12-03T10:00:00Z"})
    assert fired["taskId"]
    assert run({"scheduleId": enqueued.queue_job_id, "owner": "alice", "kind": "job",
                "scheduledTime": "2026-12-03T10:00:00Z"}) == {"taskId": None}  # gone


# --- triggers (services/triggers.py) ---------------------------------------------------------

TRID = "6560f1a0eeeeeeeeeeeeeeee"  # the trigger the sample events name


def seed_trigger(*, status: int = 202, tag: bool = False) -> None:
    """alice's trigger of the sample function on itself (A → A), tagged if asked."""
    from taskfn.stores.triggers import TriggerRecord, TriggerStore

    tags = []
    if tag:
        TagStore(wiring.table()).put_new(TagRecord(id=FRESH_TAG, owner="alice", name="t",
                                                   color="#808080", created_at=1))
        tags = [FRESH_TAG]
    TriggerStore(wiring.table()).put_new(TriggerRecord(
        id=TRID, owner="alice", function_id=FID, next_id=FID, status=status,
        include_result=True, tags=tags, created_at=now_ns()))


FRESH_TAG = "6560f1a0ffffffffffffffff"


@scenario("CreateTriggerFunction")
def _create_trigger(run: Run) -> None:
    run.http(201)
    seed_trigger(tag=True)
    run.http(201, body={"functionId": FID, "nextId": FID, "status": 200,
                        "includeResult": False, "tag": [FRESH_TAG]})


# --- nodes and platform metrics ---------------------------------------------------------

def seed_node(hash_: str = "west-1", **fields: Any) -> None:
    wiring.nodes().put_new(NodeRecord(hash=hash_, owner="alice", created_at=now_ns(), **fields))


@scenario("RegisterNodeFunction")
def _register_node(run: Run) -> None:
    assert json.loads(run.http(201)["body"])["token"]
    run.http(409)  # the hash is taken


@scenario("ListNodesFunction")
def _list_nodes(run: Run) -> None:
    seed_node()
    assert [n["hash"] for n in json.loads(run.http(200)["body"])] == ["west-1"]


@scenario("DisableNodeFunction")
def _disable_node(run: Run) -> None:
    seed_node()
    run.http(204)


@scenario("RestoreNodeFunction")
def _restore_node(run: Run) -> None:
    seed_node(disabled=True)
    assert json.loads(run.http(200)["body"])["disabled"] is False


@scenario("HeartbeatNodeFunction")
def _heartbeat_node(run: Run) -> None:
    seed_node()
    run.http(204)


@scenario("GetPlatformMetricsFunction")
def _platform_metrics(run: Run) -> None:
    seed_node(heartbeat_at=now_ns(), running=1)
    wiring.owner_metrics().register(FID, "alice")
    wiring.function_metrics().created(FID, now_ns())
    wiring.owner_metrics().building("alice", 1)
    metrics = json.loads(run.http(200)["body"])
    # The sample task is pending too.
    assert (metrics["pendingTasks"], metrics["busyNodes"], metrics["pendingBuilds"]) == (2, 1, 1)


@scenario("ListTriggersFunction", "GetTriggerFunction")
def _trigger_reads(run: Run) -> None:
    seed_trigger(tag=True)
    answer = run()
    assert answer["statusCode"] == 200, answer


@scenario("UpdateTriggerFunction")
def _update_trigger(run: Run) -> None:
    seed_trigger(tag=True)
    run.http(204)
    run.http(204, body={"tag": [FRESH_TAG]})


@scenario("DeleteTriggerFunction")
def _delete_trigger(run: Run) -> None:
    seed_trigger()
    run.http(204)


@scenario("TriggerFireFunction")
def _fire_trigger(run: Run) -> None:
    # The function's triggers, then the child task (its function read, its put, its queue
    # message); again: the child found (its read). At the depth limit: the trigger noted.
    seed_trigger()
    assert run() == {"fired": 1}
    assert run() == {"fired": 1}
    event = load_event(run.function_id)
    event["Records"][0]["dynamodb"]["NewImage"]["trigger_depth"] = {"N": "10"}
    assert run(event) == {"fired": 0}
    # A parent whose response is in S3, large enough that the child's input goes there too.
    event = load_event(run.function_id)
    new = event["Records"][0]["dynamodb"]["NewImage"]
    new["task_guid"] = {"S": FRESH_TAG}
    del new["response_body"]
    new["response_key"] = {"S": task_key(FRESH_TAG, "response")}
    new["response_headers"] = {"M": {"Content-Type": {"S": "text/plain"}}}
    wiring.blobs().put(task_key(FRESH_TAG, "response"), b"x" * 40_000, "text/plain")
    assert run(event) == {"fired": 1}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("function_id", sorted(TEMPLATE.functions))
def test_a_function_may_do_exactly_what_its_code_does(rights, monkeypatch, function_id):
    resources, policies = rights
    documents = policies[function_id]
    with Recorder(resources).installed(monkeypatch) as recorder:
        if function_id in SCENARIOS:
            SCENARIOS[function_id](Run(function_id, recorder, monkeypatch))
    assert recorder.unknown == []
    refused = [call for call in recorder.calls if not allows(documents, call)]
    assert refused == [], f"{function_id} may not do what its code does"
    needs = set().union(*(needed(call) for call in recorder.calls))
    assert granted(documents) == needs


def test_every_scenario_is_of_a_function_of_the_template():
    assert set(SCENARIOS) <= set(TEMPLATE.functions)
    assert SAMPLE_TOKEN  # the sample events' token, which `seeded` issues to alice


# --- fastlane's jobs API (services/jobs.py) --------------------------------------------------

JOB_GROUP = "nightly-report"  # the group, job and execution the sample events name
JOB_ID = "5e7b7a52-8bd0-4c55-9c3d-3f0c1a2b3c4d"
EXECUTION_ID = "019acd5e-6b40-7a31-8c2e-5f6a7b8c9d0e"


def seed_job(*, large_output: bool = True) -> None:
    """alice's sample job, run once and finished; its stdout (when `large_output`) in
    tasks/, as a large output is kept."""
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    JobService.from_env().enqueue(
        ALICE, JOB_GROUP, parse_enqueue(b'{"image": "ubuntu", "command": "echo hi"}'),
        request_ip="203.0.113.10", job_id=JOB_ID, execution_id=EXECUTION_ID)
    tasks = wiring.tasks()
    tasks.apply(EXECUTION_ID, lifecycle.start("cell-t", now_ns()))
    extra: dict[str, Any] = {"exit_code": 0, "outcome": "succeeded", "stderr": "warn"}
    if large_output:
        key = task_key(EXECUTION_ID, "stdout.txt")
        wiring.blobs().put(key, b"hello\n" * 2000, "text/plain")
        extra["stdout_key"] = key
    tasks.apply(EXECUTION_ID, lifecycle.complete("cell-t", now_ns(), failed=False,
                                                 extra=extra))


@scenario("EnqueueJobFunction", "UpsertJobFunction")
def _enqueue_job(run: Run) -> None:
    # A new group (its words and counts), then the same group again (and, for PUT, the same
    # job updated); a refused payload writes nothing.
    for _ in range(2):
        body = json.loads(run.http(200)["body"])
        assert body["taskId"] == JOB_GROUP and body["executionId"], body
    run.http(400, body={"image": "ubuntu"})
    # Scheduled: the schedule's record with the job, and Scheduler's schedule (for PUT, the
    # job's previous one removed first: its mark cleared). Scheduler refusing: the record
    # removed and the job unscheduled.
    scheduled = {"image": "ubuntu", "command": "echo hi", "cron": "0 3 * * *"}
    body = json.loads(run.http(200, body=scheduled)["body"])
    assert body["executionId"] is None, body
    scheduler = run.module().jobs.scheduler
    refuse = ClientError({"Error": {"Code": "ValidationException", "Message": "no"}},
                         "CreateSchedule")
    run.monkeypatch.setattr(scheduler.client, "create_schedule",
                            lambda **_: (_ for _ in ()).throw(refuse))
    assert run.http(500, body=scheduled)


@scenario("JobGroupsFunction", "SearchJobGroupsFunction", "GetJobGroupFunction",
          "GetJobFunction", "GetJobOutputFunction", "GetJobExecutionFunction",
          "GetJobExecutionOutputFunction")
def _job_reads(run: Run) -> None:
    # Then with the large output removed by the bucket's retention: still 200 (S3's
    # NoSuchKey needs ListBucket).
    seed_job()
    answer = run.http(200)
    assert JOB_GROUP in answer["body"] or "hello" in answer["body"], answer
    wiring.blobs().delete(task_key(EXECUTION_ID, "stdout.txt"))
    run.http(200)


CONTAINER_ARN = ("arn:aws:ecs:us-east-1:123456789012:task/taskfn-local-jobscluster/"
                 "0f1e2d3c4b5a69788796a5b4c3d2e1f0")  # the sample event's


def quiet_ecs(runtime) -> None:
    """moto answers StopTask of a task it never ran with a 500 (ECS: a 400 the runtime
    ignores): the stop is not sent to moto here (its right is still checked as granted)."""
    if runtime is not None and hasattr(runtime, "ecs"):
        runtime.ecs = type("Ecs", (), {"stop_task": staticmethod(lambda **_: {})})()


def seed_running_job(*, retries: int = 0, output: str = "hello") -> None:
    """alice's sample job, its execution launched (as the sample event's task) and its
    output in its log stream."""
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.runtime.containers import log_stream, source_record
    from taskfn.services.jobs import JobService

    JobService.from_env().enqueue(
        ALICE, JOB_GROUP, parse_enqueue(json.dumps({
            "image": "ubuntu", "command": "echo hi", "retries": retries}).encode()),
        request_ip="203.0.113.10", job_id=JOB_ID, execution_id=EXECUTION_ID)
    tasks = wiring.tasks()
    tasks.apply(EXECUTION_ID, lifecycle.start("executor-t", now_ns()))
    tasks.apply(EXECUTION_ID, lifecycle.launched("executor-t", f"container:{EXECUTION_ID}",
                                                 now_ns(), {"container_ref": CONTAINER_ARN}))
    logs, group = boto3.client("logs"), get_settings().job_log_group
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=log_stream(CONTAINER_ARN))
    logs.put_log_events(logGroupName=group, logStreamName=log_stream(CONTAINER_ARN), logEvents=[
        {"timestamp": now_ns() // 1_000_000, "message": source_record("stdout", output)}])


@scenario("ContainerEventsFunction")
def _container_events(run: Run) -> None:
    # The run completed: its task read, its output from its stream (large: to tasks/).
    seed_running_job(output="x" * 5000)
    assert run() == {"outcome": "succeeded"}
    assert wiring.tasks().get(EXECUTION_ID).stdout_key


@scenario("ContainerEventsFunction")
def _container_event_retried(run: Run) -> None:
    _container_events(run)
    # A non-zero exit with a retry left: the task back to Pending, the next execution listed
    # under the job (one transaction), the task to the queue.
    for pk, sk in ((f"TASK#{EXECUTION_ID}", "TASK"),
                   (f"FL#alice#J#{JOB_GROUP}#{JOB_ID}", f"X#{EXECUTION_ID}")):
        wiring.table().client.delete_item(TableName=wiring.table().name,
                                          Key={"PK": {"S": pk}, "SK": {"S": sk}})
    seed_running_job(retries=1)
    event = load_event(run.function_id)
    event["detail"]["containers"][0]["exitCode"] = 3
    assert run(event) == {"outcome": "retrying"}


def seed_hooked_job() -> None:
    """alice's sample job with a webhook and an e-mail on every ending, running."""
    seed_running_job()
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    hooks = {"finishes": ["http://127.0.0.1:9/hook"], "fails": ["ops@example.com"]}
    JobService.from_env().enqueue(ALICE, JOB_GROUP, parse_enqueue(json.dumps({
        "image": "ubuntu", "command": "echo hi",
        "webhooks": {"finishes": [{"url": hooks["finishes"][0]}]},
        "notify": {"fails": hooks["fails"]}}).encode()),
        request_ip="203.0.113.10", job_id=JOB_ID,
        execution_id="019acd5e-0000-7000-8000-0000000000aa")


@scenario("JobReactionsFunction")
def _job_reactions(run: Run) -> None:
    # A running job's task cancelled elsewhere: its job's hooks queued (webhook, e-mail),
    # its container stopped.
    seed_hooked_job()
    quiet_ecs(run.module().hooks.runtime)
    assert run() == {"hooks": 2, "stopped": 1}


@scenario("JobHooksFunction")
def _job_hooks(run: Run) -> None:
    # A webhook to nothing: the execution read (job, pointer, task), the failure recorded
    # on the pointer, the hook queued again. An e-mail without NotifyFrom (the template's
    # default): dropped, SES never called (its right is conditioned on that address).
    from taskfn.stores.blobs import attempt_key

    seed_hooked_job()
    key = attempt_key(EXECUTION_ID, EXECUTION_ID, "stdout.txt")  # a large output: in S3
    wiring.blobs().put(key, b"x" * 40_000, "text/plain")
    wiring.tasks().apply(EXECUTION_ID, lifecycle.complete(
        f"container:{EXECUTION_ID}", now_ns(), failed=True, failure_reason="exit code 3",
        extra={"exit_code": 3, "outcome": "failed", "stdout_key": key}))
    module = run.module()
    run.monkeypatch.setattr(module.hooks.settings, "allow_private_callbacks", True)
    assert run()["batchItemFailures"] == []
    event = load_event(run.function_id)
    event["Records"][0]["body"] = json.dumps({**json.loads(event["Records"][0]["body"]),
                                              "kind": "notify", "event": "fails",
                                              "email": "ops@example.com"})
    assert run(event)["batchItemFailures"] == []


@scenario("StopJobExecutionFunction")
def _stop_execution(run: Run) -> None:
    # A running execution: the stop marked on its task, its container stopped.
    seed_running_job()
    quiet_ecs(run.module().jobs.runs().runtime)
    run.http(200)
    assert wiring.tasks().get(EXECUTION_ID).stop_requested == "user"


@scenario("StopJobFunction")
def _stop_job(run: Run) -> None:
    # Its unfinished executions stopped; one whose record changed meanwhile is read again.
    runs = run.module().jobs.runs()
    first_try = runs._stop_once
    run.monkeypatch.setattr(runs, "_stop_once", lambda task, by: (
        run.monkeypatch.setattr(runs, "_stop_once", first_try) or "superseded"))
    _stop_execution(run)
    # A scheduled job: its schedule removed (Scheduler's, the record) and the job unmarked.
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    JobService.from_env().enqueue(ALICE, JOB_GROUP, parse_enqueue(
        b'{"image": "alpine", "command": "true", "cron": "0 3 * * *"}'),
        request_ip="1.2.3.4", job_id=JOB_ID)
    run.http(200)
    assert not wiring.table().get(f"FL#alice#T#{JOB_GROUP}", f"J#{JOB_ID}")["schedule_id"]


@scenario("StatusFunction")
def _status(run: Run) -> None:
    # The counts, the scheduled jobs and their jobs, the queues' lengths.
    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.services.jobs import JobService

    JobService.from_env().enqueue(ALICE, JOB_GROUP, parse_enqueue(
        b'{"image": "alpine", "command": "true", "cron": "0 3 * * *"}'), request_ip="1.2.3.4")
    body = json.loads(run.http(200)["body"])
    assert len(body["jobs"]["scheduled"]) == 1, body


@scenario("RetryJobFunction")
def _retry_job(run: Run) -> None:
    # The last execution still running: stopped first; then the new run written (the task,
    # its pointer and the job's count in one transaction) and queued.
    seed_running_job()
    quiet_ecs(run.module().jobs.runs().runtime)
    body = json.loads(run.http(200)["body"])
    assert body["jobId"] == JOB_ID
    job = wiring.table().get(f"FL#alice#T#{JOB_GROUP}", f"J#{JOB_ID}")
    assert job["execution_count"] == 2


@scenario("ContainerWatchFunction")
def _container_watch(run: Run) -> None:
    # Not yet due: watched again; past its timeout: the stop marked, its container stopped.
    seed_running_job()
    quiet_ecs(run.module().runs.runtime)
    assert run() == {"batchItemFailures": []}
    assert not wiring.tasks().get(EXECUTION_ID).stop_requested
    wiring.table().update(f"TASK#{EXECUTION_ID}", "TASK", set_values={"started_at": 1},
                          condition="attribute_exists(PK)")
    assert run() == {"batchItemFailures": []}
    assert wiring.tasks().get(EXECUTION_ID).stop_requested == "timeout"


# --- fastlane's live logs (services/livelogs.py) ----------------------------------------------


def fresh_token() -> str:
    """alice's new token: no handler has its caller cached, so its read is recorded."""
    return TokenService.from_env().create("alice", "user").token


def follow(connection_id: str, **query: str) -> None:
    """A WebSocket connection of alice's following the sample job (a token no handler has
    cached), as $connect records it; its pump message sent."""
    from taskfn.services.livelogs import LiveLogs

    event = load_event("WsConnectFunction")
    event["headers"]["Authorization"] = f"Bearer {fresh_token()}"
    event["queryStringParameters"] |= query
    event["requestContext"]["connectionId"] = connection_id
    assert LiveLogs.from_env().connect(event)["statusCode"] == 200


@scenario("WsConnectFunction")
def _ws_connect(run: Run) -> None:
    # A token: its read, the job and its last execution (a Query), the connection (by id and
    # under the execution, one transaction), the pump's message. Then a page's ticket for
    # one execution: the ticket, the job, the execution's pointer.
    from taskfn.services.livelogs import LiveLogs

    seed_job(large_output=False)
    event = load_event(run.function_id)
    event["headers"]["Authorization"] = f"Bearer {fresh_token()}"
    assert run(event)["statusCode"] == 200
    ticket = LiveLogs.from_env().issue_ticket(ALICE, JOB_GROUP, JOB_ID, EXECUTION_ID)
    event = load_event(run.function_id)
    del event["headers"]["Authorization"]
    event["queryStringParameters"] = {"ticket": ticket}
    event["requestContext"]["connectionId"] = "SecondConn0="
    assert run(event)["statusCode"] == 200


@scenario("WsDisconnectFunction")
def _ws_disconnect(run: Run) -> None:
    seed_job(large_output=False)
    follow("L0SM9cOFvHcCIhw=")
    assert run() == {"statusCode": 200}
    assert wiring.table().get("FLWSC#L0SM9cOFvHcCIhw=", "CONN") is None


@scenario("StreamPageFunction", "WsRedirectFunction")
def _stream_page(run: Run) -> None:
    # The job and the execution read; the page's (or the redirect's) ticket written.
    seed_job(large_output=False)
    event = load_event(run.function_id)
    for execution in (False, True):  # the job's route, and an execution's
        path = f"/tasks/{JOB_GROUP}/jobs/{JOB_ID}" + (
            f"/executions/{EXECUTION_ID}" if execution else "") + "/" + event[
            "rawPath"].rsplit("/", 1)[1]
        route = "/tasks/{id}/jobs/{jobId}" + ("/executions/{executionId}" if execution
                                              else "") + "/" + path.rsplit("/", 1)[1]
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {route}"
        event["pathParameters"] = {"id": JOB_GROUP, "jobId": JOB_ID} | (
            {"executionId": EXECUTION_ID} if execution else {})
        answer = run(event)
        assert answer["statusCode"] in (200, 307), answer


@scenario("LogPumpFunction")
def _log_pump(run: Run) -> None:
    # A connection already streaming a run that has just finished: the lease; the rest of
    # the log stream copied (chunks and head in one transaction); sent; closed once drained;
    # its records removed. Then new connections to the finished run: its outputs framed
    # (the job, the pointer, the task; a large stdout from tasks/, then one removed by the
    # bucket's retention: ListBucket for S3's NoSuchKey).
    from taskfn.services.livelogs import ManagementApi
    from taskfn.stores.livelogs import LiveLogStore

    seed_running_job(output="hello")
    cell = f"container:{EXECUTION_ID}"
    wiring.tasks().apply(EXECUTION_ID, lifecycle.complete(cell, now_ns(), failed=False, extra={
        "exit_code": 0, "outcome": "succeeded", "stdout": "hello"}))
    follow("StreamConn0=")
    store = LiveLogStore(wiring.table())
    (listener,) = store.listeners(EXECUTION_ID)
    assert store.mark(listener, sent_seq=0, mode="stream")
    live = run.module().live
    run.monkeypatch.setattr(live, "_connections", ManagementApi(boto3.client(
        "apigatewaymanagementapi")))
    run.monkeypatch.setattr(live, "sleep", lambda _: None)
    pump = load_event(run.function_id)
    assert run(pump) == {"outcomes": ["idle"]}
    key = task_key(EXECUTION_ID, "stdout.txt")
    wiring.blobs().put(key, b"hello\n" * 2000, "text/plain")
    wiring.table().update(f"TASK#{EXECUTION_ID}", "TASK", set_values={"stdout_key": key},
                          condition="attribute_exists(PK)")
    for connection_id in ("FramedConn0=", "FramedConn1="):
        follow(connection_id, execution=EXECUTION_ID)
        assert run(pump) == {"outcomes": ["idle"]}
        wiring.blobs().delete(key)



# --- Coder's agent tasks (services/agenttasks.py) ---------------------------------------------

AGENT_TASK = "0b5e6f0c-7a8d-4e2f-9c1b-3d4e5f6a7b8c"  # the task and name the sample events name
AGENT_NAME = "hello-task"


def seed_agent_task(*, finished: bool = True, large: bool = False, held: bool = False) -> None:
    """alice's sample agent task (the sample build's), its first turn finished unless not
    `finished`; with `large`, its input and output in tasks/ (as large ones are kept)."""
    from taskfn.adapters import coder
    from taskfn.services.agenttasks import AgentTaskService
    from taskfn.stores.agenttasks import AgentTaskStore

    service = AgentTaskService.from_env()
    build = wiring.builds().get(BID)
    wiring.builds().put(build.model_copy(update={"code_key": "code/sample.zip"}))
    service.create(ALICE, "me", template_version_id=coder.id_uuid(BID), preset_id=None,
                   prompt="p" * (40_000 if large else 10), name="scratch", display_name="")
    record = service.task(ALICE, "me", "scratch")
    AgentTaskStore(wiring.table(), wiring.tasks()).create(record.model_copy(update={
        "task_guid": AGENT_TASK, "agent_name": AGENT_NAME}))
    if record.input_key:
        wiring.blobs().put(task_key(AGENT_TASK, "turn-1/input.json"),
                           wiring.blobs().get(record.input_key), "application/json")
        wiring.table().update(f"TASK#{AGENT_TASK}", "TASK", set_values={
            "input_key": task_key(AGENT_TASK, "turn-1/input.json")},
            condition="attribute_exists(PK)")
    if not finished:
        return
    tasks = wiring.tasks()
    tasks.apply(AGENT_TASK, lifecycle.start("cell-t", now_ns()))
    extra: dict[str, Any] = {"response_status": 200, "response_body": "done"}
    if large:
        key = task_key(AGENT_TASK, "result")
        wiring.blobs().put(key, b"r" * 50_000, "text/plain")
        extra = {"response_status": 200, "response_key": key}
    tasks.apply(AGENT_TASK, lifecycle.complete("cell-t", now_ns(), failed=False, extra=extra))
    if held:
        tasks.apply(AGENT_TASK, lifecycle.hold_turn(1, now_ns()))


def by_name(event: dict) -> dict:
    """The sample event with the task named instead of identified."""
    event = copy.deepcopy(event)
    event["rawPath"] = event["rawPath"].replace(AGENT_TASK, AGENT_NAME)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    event["pathParameters"]["task"] = AGENT_NAME
    return event


@scenario("CoderCreateTaskFunction")
def _coder_create(run: Run) -> None:
    # The build, its function and a preset read; the record and its name (one transaction);
    # the function's counters; a large first input to tasks/; the queue. A taken name: the
    # transaction refused.
    from taskfn.stores.agenttasks import AgentTaskStore, PresetRecord

    build = wiring.builds().get(BID)
    wiring.builds().put(build.model_copy(update={"code_key": "code/sample.zip"}))
    preset = "7d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    AgentTaskStore(wiring.table(), wiring.tasks()).put_preset(PresetRecord(
        id=preset, owner="alice", name="small", created_at=1, updated_at=1, timeout=20),
        new=True)
    event = load_event(run.function_id)
    run.http(201, event=event)
    run.http(409, event=event)
    body = json.loads(event["body"]) | {"name": "big", "input": "x" * 40_000,
                                        "template_version_preset_id": preset}
    run.http(201, event=event, body=body)


@scenario("CoderListTasksFunction")
def _coder_list(run: Run) -> None:
    seed_agent_task()
    answer = run.http(200)
    assert AGENT_TASK in answer["body"], answer


@scenario("CoderGetTaskFunction")
def _coder_get(run: Run) -> None:
    seed_agent_task()
    run.http(200)
    run.http(200, event=by_name(load_event(run.function_id)))


@scenario("CoderDeleteTaskFunction")
def _coder_delete(run: Run) -> None:
    seed_agent_task()
    run.http(202, event=by_name(load_event(run.function_id)))
    run.http(404)


@scenario("CoderSendTaskFunction")
def _coder_send(run: Run) -> None:
    # A turn whose input and output are in tasks/, and a next input as large.
    seed_agent_task(large=True)
    event = by_name(load_event(run.function_id))
    run.http(204, event=event, body={"input": "y" * 40_000})


@scenario("CoderUpdateInputFunction", "CoderResumeTaskFunction")
def _coder_held(run: Run) -> None:
    seed_agent_task(held=True)
    answer = run(by_name(load_event(run.function_id)))
    assert answer["statusCode"] in (202, 204), answer


@scenario("CoderPauseTaskFunction")
def _coder_pause(run: Run) -> None:
    seed_agent_task()
    run.http(202, event=by_name(load_event(run.function_id)))


@scenario("CoderTaskLogsFunction")
def _coder_logs(run: Run) -> None:
    seed_agent_task(large=True)
    answer = run.http(200, event=by_name(load_event(run.function_id)))
    assert "rrrr" in answer["body"], answer


PRESET = "7d1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"  # the preset the sample events name


def seed_preset() -> None:
    from taskfn.stores.agenttasks import AgentTaskStore, PresetRecord

    AgentTaskStore(wiring.table(), wiring.tasks()).put_preset(PresetRecord(
        id=PRESET, owner="alice", name="small", created_at=1, updated_at=1), new=True)


@scenario("CoderCreatePresetFunction")
def _coder_create_preset(run: Run) -> None:
    run.http(201)


@scenario("CoderListPresetsFunction")
def _coder_list_presets(run: Run) -> None:
    seed_preset()
    assert PRESET in run.http(200)["body"]


@scenario("CoderUpdatePresetFunction")
def _coder_update_preset(run: Run) -> None:
    seed_preset()
    run.http(200)


@scenario("CoderDeletePresetFunction")
def _coder_delete_preset(run: Run) -> None:
    seed_preset()
    run.http(204)
    run.http(404)
