"""Create template.yaml's tables, buckets and queues in moto, from their own definitions.

Physical names are deterministic (``<prefix>-<logical id lowercase>``) and creation is
idempotent, so provisioning twice against the same moto reuses what is there.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from taskfn.local.template import Template

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "taskfn-local",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/taskfn-local/local",
    "AWS::NotificationARNs": "",
}
# moto runs no Lambda functions without Docker, so the local stack runs user code in the
# executor's sandboxes: isolation "process" (see runtime.confinement for what that confines).
LOCAL_PARAMETERS = {"Isolation": "process"}
TABLE, BUCKET, QUEUE = "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue"
EVENT_BUS = "AWS::Events::EventBus"
SCHEDULE_GROUP = "AWS::Scheduler::ScheduleGroup"  # schedules (local/scheduler.py)
# fastlane's jobs: the cluster their runs name, and the log group of their output (the
# local back-end, local/containers.py, runs them as processes and writes it there).
CLUSTER, LOG_GROUP = "AWS::ECS::Cluster", "AWS::Logs::LogGroup"


class _NoValue:
    """``!Ref AWS::NoValue``: the property is dropped, as CloudFormation does."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Provisioned:
    """Physical names and attributes of the template's resources, and an intrinsic resolver."""

    refs: dict[str, str]  # logical id -> what !Ref gives (table name, bucket name, queue URL)
    attrs: dict[tuple[str, str], str]  # (logical id, "Arn" | "QueueName" | ...) -> value
    parameters: dict[str, str] = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """Resolve Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::If ... ; a scalar gives a str."""
        resolved = self.resolve_tree(value)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, int | float):
            return str(resolved)
        return resolved

    def resolve_tree(self, value: Any) -> Any:
        """Resolve every intrinsic inside lists and dicts, dropping AWS::NoValue entries."""
        if isinstance(value, list):
            items = (self.resolve_tree(item) for item in value)
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, argument)
        resolved = {key: self.resolve_tree(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for source in (PSEUDO_PARAMETERS, self.parameters, self.refs):
            if name in source:
                return source[name]
        raise KeyError(f"!Ref {name}: no such parameter or resource")

    def _get_att(self, resource: str, attribute: str) -> str:
        try:
            return self.attrs[(resource, attribute)]
        except KeyError:
            raise KeyError(f"!GetAtt {resource}.{attribute}: not known locally") from None

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve_tree(argument[1])
        else:
            text, variables = argument, {}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def condition(self, name: str) -> bool:
        """Evaluate a named condition of the template."""
        return bool(self.resolve_tree(self.conditions[name]))

    def _intrinsic(self, key: str, argument: Any) -> Any:
        match key:
            case "Ref":
                return self._ref(argument)
            case "Condition":
                return self.condition(argument)
            case "Fn::GetAtt":
                resource, attribute = (
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                return self._get_att(resource, self.resolve_tree(attribute))
            case "Fn::Sub":
                return self._sub(argument)
            case "Fn::Join":
                delimiter, items = argument
                return delimiter.join(str(self.resolve(item)) for item in self.resolve_tree(items))
            case "Fn::Select":
                index, items = self.resolve_tree(argument)
                return items[int(index)]
            case "Fn::Split":
                delimiter, text = self.resolve_tree(argument)
                return text.split(delimiter)
            case "Fn::If":
                name, when_true, when_false = argument
                return self.resolve_tree(when_true if self.condition(name) else when_false)
            case "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            case "Fn::Not":
                return not self.resolve_tree(argument[0])
            case "Fn::And":
                return all(self.resolve_tree(item) for item in argument)
            case "Fn::Or":
                return any(self.resolve_tree(item) for item in argument)
            case "Fn::Base64":
                return base64.b64encode(str(self.resolve(argument)).encode()).decode()
            case "Fn::GetAZs":
                return [f"{REGION}{zone}" for zone in "abcdef"]
        raise ValueError(f"{key} is not supported by the local stack")


# --- provisioning -----------------------------------------------------------------------


def _references(value: Any) -> set[str]:
    """Logical ids that a property tree refers to (Ref, GetAtt, ${X} in Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item.split(".")[0] if isinstance(item, str) else item[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {m.split(".")[0] for m in _SUB_VARIABLE.findall(text)}
                found |= _references(item[1:] if isinstance(item, list) else [])
            else:
                found |= _references(item)
    return found


def _creation_order(resources: dict[str, dict], wanted: set[str]) -> list[str]:
    """The wanted resources, each after those it refers to or DependsOn."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order or logical_id not in wanted:
            return
        if logical_id in visiting:
            raise ValueError(f"circular reference through {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends = resource.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else depends
        for other in sorted(_references(resource.get("Properties") or {}) | set(depends)):
            visit(other)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _create_table(client: Any, name: str, props: dict) -> dict:
    billing = props.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    throughput = props.get("ProvisionedThroughput")
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = throughput or {
            "ReadCapacityUnits": 5,
            "WriteCapacityUnits": 5,
        }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = [
            {
                key: index[key]
                for key in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
                if key in index
            }
            for index in props.get(kind) or []
        ]
        if indexes:
            request[kind] = indexes
    stream = props.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    try:
        table = client.create_table(**request)["TableDescription"]
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
        table = client.describe_table(TableName=name)["Table"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return table


def _create_bucket(client: Any, name: str, props: dict) -> None:
    try:
        client.create_bucket(Bucket=name)
    except ClientError as error:
        if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    versioning = props.get("VersioningConfiguration")
    if versioning:
        client.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": versioning["Status"]}
        )


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
    "RedrivePolicy",
    "RedriveAllowPolicy",
)


def _queue_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _create_queue(client: Any, name: str, props: dict) -> tuple[str, str]:
    attributes = {key: _queue_attribute(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    try:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as error:
        if _error_code(error) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
        attributes.pop("FifoQueue", None)  # cannot be changed on an existing queue
        if attributes:
            client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def _create_event_bus(client: Any, name: str) -> str:
    try:
        return client.create_event_bus(Name=name)["EventBusArn"]
    except ClientError as error:
        if _error_code(error) != "ResourceAlreadyExistsException":
            raise
        return client.describe_event_bus(Name=name)["Arn"]


def _placeholder(provisioned: Provisioned, logical_id: str, kind: str, name: str) -> None:
    """Refs and Arns of resources that are not created in moto (functions, APIs, layers)."""
    if kind == "AWS::Serverless::Function" or kind == "AWS::Lambda::Function":
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        provisioned.attrs[(logical_id, "Arn")] = arn
    elif kind == "AWS::Serverless::LayerVersion" or kind == "AWS::Lambda::LayerVersion":
        name = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
    elif kind == "AWS::Serverless::HttpApi":
        name = "local"
        provisioned.attrs[(logical_id, "ApiEndpoint")] = "http://localhost"
    elif kind == "AWS::IAM::Role":  # schedules: SchedulerRole (local/scheduler.py needs none)
        provisioned.attrs[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    provisioned.refs[logical_id] = name


def ensure_key_table(client: Any, table: str, key: str) -> None:
    """A small table of the stack's own, keyed by one string (kept stream positions, job
    runs): created unless it is there already (a kept data directory has it)."""
    try:
        client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise


def physical_name(prefix: str, logical_id: str) -> str:
    """The deterministic local name of a resource."""
    return f"{prefix}-{logical_id.lower()}"


def provision(template: Template, *, prefix: str = "taskfn-local") -> Provisioned:
    """Create the template's tables, buckets and queues in the endpoint of AWS_ENDPOINT_URL."""
    provisioned = Provisioned(
        refs={}, attrs={}, parameters={**template.parameters, **LOCAL_PARAMETERS},
        conditions=template.conditions
    )
    session = boto3.session.Session()
    creatable = {TABLE, BUCKET, QUEUE, EVENT_BUS, SCHEDULE_GROUP, CLUSTER, LOG_GROUP}
    for logical_id, resource in template.resources.items():
        kind = resource.get("Type", "")
        if kind not in creatable:
            _placeholder(provisioned, logical_id, kind, physical_name(prefix, logical_id))
    wanted = {
        logical_id
        for logical_id, resource in template.resources.items()
        if resource.get("Type") in creatable
        and ("Condition" not in resource or provisioned.condition(resource["Condition"]))
    }
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service)
        return clients[service]

    for logical_id in _creation_order(template.resources, wanted):
        resource = template.resources[logical_id]
        props = provisioned.resolve_tree(resource.get("Properties") or {})
        name = physical_name(prefix, logical_id)
        match resource["Type"]:
            case "AWS::DynamoDB::Table":
                name = props.get("TableName", name)
                table = _create_table(client("dynamodb"), name, props)
                provisioned.refs[logical_id] = name
                provisioned.attrs[(logical_id, "Arn")] = table["TableArn"]
                if table.get("LatestStreamArn"):
                    provisioned.attrs[(logical_id, "StreamArn")] = table["LatestStreamArn"]
            case "AWS::S3::Bucket":
                name = props.get("BucketName", name).lower()
                _create_bucket(client("s3"), name, props)
                provisioned.refs[logical_id] = name
                provisioned.attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
                provisioned.attrs[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"
                provisioned.attrs[(logical_id, "RegionalDomainName")] = (
                    f"{name}.s3.{REGION}.amazonaws.com"
                )
            case "AWS::SQS::Queue":
                if "QueueName" in props:
                    name = props["QueueName"]
                elif props.get("FifoQueue"):
                    name += ".fifo"
                url, arn = _create_queue(client("sqs"), name, props)
                provisioned.refs[logical_id] = url
                provisioned.attrs[(logical_id, "Arn")] = arn
                provisioned.attrs[(logical_id, "QueueName")] = name
                provisioned.attrs[(logical_id, "QueueUrl")] = url
            case "AWS::Events::EventBus":
                name = props.get("Name", name)
                arn = _create_event_bus(client("events"), name)
                provisioned.refs[logical_id] = name
                provisioned.attrs[(logical_id, "Name")] = name
                provisioned.attrs[(logical_id, "Arn")] = arn
            case "AWS::Scheduler::ScheduleGroup":
                name = props.get("Name", name)
                _create_schedule_group(client("scheduler"), name)
                provisioned.refs[logical_id] = name
            case "AWS::ECS::Cluster":
                name = props.get("ClusterName", name)
                cluster = client("ecs").create_cluster(clusterName=name)["cluster"]
                provisioned.refs[logical_id] = name
                provisioned.attrs[(logical_id, "Arn")] = cluster["clusterArn"]
            case "AWS::Logs::LogGroup":
                name = props.get("LogGroupName", name)
                _create_log_group(client("logs"), name)
                provisioned.refs[logical_id] = name
                provisioned.attrs[(logical_id, "Arn")] = (
                    f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*")
    return provisioned


def _create_log_group(client: Any, name: str) -> None:
    try:
        client.create_log_group(logGroupName=name)
    except ClientError as error:
        if _error_code(error) != "ResourceAlreadyExistsException":
            raise


def _create_schedule_group(client: Any, name: str) -> None:
    try:
        client.create_schedule_group(Name=name)
    except ClientError as error:
        if _error_code(error) not in ("ConflictException", "ResourceAlreadyExistsException"):
            raise


def function_environment(template: Template, provisioned: Provisioned) -> dict[str, str]:
    """Globals.Function.Environment.Variables resolved: one environment for every function."""
    variables = ((template.globals.get("Function") or {}).get("Environment") or {}).get(
        "Variables"
    ) or {}
    environment = {}
    for name, value in variables.items():
        resolved = provisioned.resolve(value)
        if resolved is not NO_VALUE:
            environment[name] = str(resolved)
    return environment
