"""Each function of the local stack signs its AWS calls as its own role, with template.yaml's
own policies, and moto checks them (see motoserver).

SAM's translator turns template.yaml into the CloudFormation that AWS would get, roles
included; each function's role is created in moto with its inline policies (what its Policies
say) and assumed once. Handlers all run in this one process, so the credentials of a request
follow the function being invoked: local.invoke sets `acting_as(function)` around each call,
and every client of taskfn.aws signs with FunctionCredentials, which reads it. Work done
outside an invocation (provisioning, the pollers that play the Lambda service, the stack's
own admin token) signs as the stack's admin user.

The roles' managed policies (AWSLambdaBasicExecutionRole, the SQS and stream execution roles)
are left out: they give the Lambda service its rights over the event sources, which the
pollers exercise here as the admin user.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.credentials import Credentials, ReadOnlyCredentials

from taskfn.local.provision import REGION, Provisioned
from taskfn.local.template import Template

ADMIN_USER = "admin"
_ALLOW_EVERYTHING = {"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
_acting_as: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taskfn_local_function", default=None)


@contextlib.contextmanager
def acting_as(function_id: str) -> Iterator[None]:
    """AWS calls made in this context (and in threads that copy it) sign as the function."""
    token = _acting_as.set(function_id)
    try:
        yield
    finally:
        _acting_as.reset(token)


@dataclass(frozen=True)
class Identities:
    admin: ReadOnlyCredentials
    functions: dict[str, ReadOnlyCredentials]

    def admin_environment(self) -> dict[str, str | None]:
        """The standard variables (None: unset), for clients built outside taskfn.aws: the
        pollers, and tests that look into the stack."""
        return {"AWS_ACCESS_KEY_ID": self.admin.access_key,
                "AWS_SECRET_ACCESS_KEY": self.admin.secret_key,
                "AWS_SESSION_TOKEN": self.admin.token}


class FunctionCredentials(Credentials):
    """Credentials that are those of the function being invoked, or the admin's."""

    def __init__(self, identities: Identities):
        self._identities = identities
        super().__init__(identities.admin.access_key, identities.admin.secret_key,
                         identities.admin.token, method="taskfn-local")

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        function = _acting_as.get()
        if function is None:
            return self._identities.admin
        return self._identities.functions[function]

    # botocore reads these outside signing too (presigning, caches): the same rule.
    @property
    def access_key(self) -> str:  # type: ignore[override]
        return self.get_frozen_credentials().access_key

    @access_key.setter
    def access_key(self, value: str) -> None:
        pass

    @property
    def secret_key(self) -> str:  # type: ignore[override]
        return self.get_frozen_credentials().secret_key

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        pass

    @property
    def token(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().token

    @token.setter
    def token(self, value: str | None) -> None:
        pass


def function_policies(template: Template, provisioned: Provisioned) -> dict[str, list[dict]]:
    """Each function's inline IAM policy documents, as SAM would create its role, resolved."""
    transformed = sam_transform(template, provisioned.parameters)
    policies: dict[str, list[dict]] = {}
    for function_id in template.functions:
        role = transformed["Resources"].get(f"{function_id}Role")
        if role is None:
            policies[function_id] = []
            continue
        documents = [
            {"Version": "2012-10-17", **provisioned.resolve_tree(policy["PolicyDocument"])}
            for policy in provisioned.resolve_tree(role["Properties"].get("Policies") or [])
        ]
        policies[function_id] = documents
    return policies


def sam_transform(template: Template, parameters: dict[str, str]) -> dict[str, Any]:
    """template.yaml as SAM translates it for CloudFormation (code locations stubbed)."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    document = yaml_parse(Path(template.path).read_text())
    for resource in document.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = "s3://taskfn-local/code"
    parameters = dict(parameters)
    # An SSM parameter in AWS; any layer ARN will do for the translation.
    parameters["PowertoolsLayerArn"] = f"arn:aws:lambda:{REGION}:017000801446:layer:powertools:1"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION  # the translator asks boto3 for the region
    try:
        return transform(document, parameters, _NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous


class _NoManagedPolicies:
    """The translator's managed-policy loader: the template names managed policies by ARN."""

    def load(self) -> dict[str, str]:
        return {}


def create_identities(template: Template, provisioned: Provisioned, *,
                      prefix: str = "taskfn-local") -> Identities:
    """Create the admin user and every function's role in the moto that AWS_ENDPOINT_URL
    names (while IAM is still off), and sign in as each."""
    session = boto3.session.Session()
    iam, sts = session.client("iam"), session.client("sts")
    iam.create_user(UserName=f"{prefix}-{ADMIN_USER}")
    iam.put_user_policy(UserName=f"{prefix}-{ADMIN_USER}", PolicyName="everything",
                        PolicyDocument=json.dumps(_ALLOW_EVERYTHING))
    key = iam.create_access_key(UserName=f"{prefix}-{ADMIN_USER}")["AccessKey"]
    admin = ReadOnlyCredentials(key["AccessKeyId"], key["SecretAccessKey"], None)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}
    functions: dict[str, ReadOnlyCredentials] = {}
    for function_id, documents in function_policies(template, provisioned).items():
        name = f"{prefix}-{function_id}"[:64]
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        for number, document in enumerate(documents):
            iam.put_role_policy(RoleName=name, PolicyName=f"policy{number}",
                                PolicyDocument=json.dumps(document))
        assumed = sts.assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName=function_id[:64],
                                  DurationSeconds=43200)["Credentials"]
        functions[function_id] = ReadOnlyCredentials(
            assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
    return Identities(admin, functions)
