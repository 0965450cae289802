"""Read template.yaml into a small model: the local stack runs what the SAM template declares.

Nothing here talks to AWS; values stay unresolved (``{"Ref": ...}``) until provision.py
knows the physical names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[4] / "template.yaml"

FUNCTION_TYPE = "AWS::Serverless::Function"
HTTP_API_TYPE = "AWS::Serverless::HttpApi"


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi event: ``authorizer`` None means public (``Auth: {Authorizer: NONE}``)."""

    method: str  # upper case, "ANY" included
    path: str  # "/v1/task/{id}", "/{proxy+}" or "$default"
    function_id: str
    authorizer: str | None


@dataclass(frozen=True)
class SqsSource:
    """One SQS event source mapping of a function."""

    function_id: str
    queue_id: str
    batch_size: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class StreamSource:
    """One DynamoDB stream event source mapping of a function; `filters` are the event
    patterns of its FilterCriteria (a record passes if any matches; none: all pass)."""

    function_id: str
    table_id: str
    batch_size: int
    starting_position: str
    filters: tuple[dict, ...] = ()


@dataclass(frozen=True)
class ScheduleSource:
    """One Schedule event of a function: invoke it every `period_s` seconds."""

    function_id: str
    period_s: float


@dataclass(frozen=True)
class RuleSource:
    """One EventBridgeRule event of a function: invoke it with every event on the default
    bus that its pattern matches (`pattern` unresolved, as written)."""

    function_id: str
    pattern: dict


RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400,
              "days": 86400}


def parse_rate(expression: str) -> float:
    """Seconds of an EventBridge `rate(N unit)`; ValueError for anything else (cron)."""
    text = expression.strip()
    if not (text.startswith("rate(") and text.endswith(")")):
        raise ValueError(f"only rate(...) schedules run locally: {expression!r}")
    amount, _, unit = text[5:-1].strip().partition(" ")
    if not amount.isdigit() or int(amount) < 1 or unit.strip() not in RATE_UNITS:
        raise ValueError(f"invalid rate expression: {expression!r}")
    return float(int(amount) * RATE_UNITS[unit.strip()])


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the local stack runs it; ``environment`` has Globals merged, unresolved."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict


@dataclass(frozen=True)
class AuthorizerSpec:
    """A Lambda authorizer of the HttpApi (payload 2.0)."""

    name: str
    function_id: str
    identity_headers: tuple[str, ...]
    simple_responses: bool
    reauthorize_every: int = 0  # seconds an answer is cached; 0 = no cache


@dataclass(frozen=True)
class Template:
    """The parts of template.yaml the local stack needs, plus the raw resources."""

    path: Path
    resources: dict[str, dict]
    functions: dict[str, FunctionSpec]
    routes: list[HttpRoute]
    sqs_sources: list[SqsSource]
    authorizers: dict[str, AuthorizerSpec]
    parameters: dict[str, str] = field(default_factory=dict)  # name -> default value
    schedules: list[ScheduleSource] = field(default_factory=list)
    stream_sources: list[StreamSource] = field(default_factory=list)
    event_rules: list[RuleSource] = field(default_factory=list)
    globals: dict = field(default_factory=dict)
    conditions: dict = field(default_factory=dict)


# --- YAML with CloudFormation short tags ------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": "x"}`` and ``!Sub s`` into
    ``{"Fn::Sub": s}``, as CloudFormation reads them."""


def _construct_short_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_short_tag)


def load_yaml(text: str) -> dict:
    """Parse CloudFormation YAML (short tags included)."""
    return yaml.load(text, Loader=CfnLoader)  # CfnLoader is a SafeLoader


# --- the model --------------------------------------------------------------------------


def _template_path(path: Path | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get("TASKFN_TEMPLATE")
    return Path(env) if env else DEFAULT_TEMPLATE


def _ref_target(value: Any) -> str | None:
    """Logical id named by ``!Ref X`` or ``!GetAtt X.Attr`` (None for a literal)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def _function_spec(
    root: Path, logical_id: str, props: dict, function_globals: dict
) -> FunctionSpec:
    def prop(name: str, default: Any = None) -> Any:
        return props.get(name, function_globals.get(name, default))

    environment = dict(function_globals.get("Environment", {}).get("Variables", {}) or {})
    environment.update(props.get("Environment", {}).get("Variables", {}) or {})
    code_uri = prop("CodeUri", ".")
    if not isinstance(code_uri, str):
        raise ValueError(f"{logical_id}: only a local CodeUri path can run locally")
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=(root / code_uri).resolve(),
        handler=prop("Handler"),
        timeout=_largest(prop("Timeout", 3)),
        memory_mb=_largest(prop("MemorySize", 128)),
        environment=environment,
    )


def _largest(value: Any) -> int:
    """A number of the template; for a conditional one (`!If [c, 256, 1769]`), the largest it
    may be (what the local context reports; the local stack never enforces it)."""
    if isinstance(value, dict):
        (arguments,) = value.values()
        found = [_largest(item) for item in arguments
                 if isinstance(item, dict) or str(item).isdigit()]
        return max(found, default=0)
    return int(value)


def _authorizers(resources: dict) -> tuple[dict[str, AuthorizerSpec], dict[str, str | None]]:
    """The authorizers of every HttpApi, and each HttpApi's default authorizer."""
    authorizers: dict[str, AuthorizerSpec] = {}
    defaults: dict[str, str | None] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != HTTP_API_TYPE:
            continue
        auth = (resource.get("Properties") or {}).get("Auth") or {}
        defaults[logical_id] = auth.get("DefaultAuthorizer")
        for name, spec in (auth.get("Authorizers") or {}).items():
            function_id = _ref_target(spec.get("FunctionArn"))
            if function_id is None:  # a JWT authorizer or a foreign function: not runnable
                continue
            identity = spec.get("Identity") or {}
            authorizers[name] = AuthorizerSpec(
                name=name,
                function_id=function_id,
                identity_headers=tuple(identity.get("Headers") or ()),
                simple_responses=bool(spec.get("EnableSimpleResponses", False)),
                reauthorize_every=int(identity.get("ReauthorizeEvery", 0) or 0),
            )
    return authorizers, defaults


def _http_route(function_id: str, props: dict, defaults: dict[str, str | None]) -> HttpRoute:
    api_id = _ref_target(props.get("ApiId"))
    if api_id is None:  # the implicit API: the only HttpApi of the template, if any
        api_id = next(iter(defaults), None)
    authorizer = (props.get("Auth") or {}).get("Authorizer", defaults.get(api_id or ""))
    if authorizer == "NONE":
        authorizer = None
    method, path = props.get("Method"), props.get("Path")
    if method is None and path is None:
        method, path = "ANY", "$default"
    return HttpRoute(
        method=str(method or "ANY").upper(),
        path=str(path or "/"),
        function_id=function_id,
        authorizer=authorizer,
    )


def _stream_source(function_id: str, table_id: str, props: dict) -> StreamSource:
    patterns = ((props.get("FilterCriteria") or {}).get("Filters") or [])
    return StreamSource(
        function_id=function_id,
        table_id=table_id,
        batch_size=int(props.get("BatchSize", 100)),
        starting_position=str(props.get("StartingPosition", "LATEST")),
        filters=tuple(json.loads(item["Pattern"]) for item in patterns if "Pattern" in item),
    )


def load_template(path: Path | None = None) -> Template:
    """Load template.yaml (default: the repository's, or ``$TASKFN_TEMPLATE``)."""
    path = _template_path(path).resolve()
    document = load_yaml(path.read_text())
    resources: dict[str, dict] = document.get("Resources") or {}
    function_globals = (document.get("Globals") or {}).get("Function") or {}
    parameters = {
        name: str(spec["Default"])
        for name, spec in (document.get("Parameters") or {}).items()
        if "Default" in spec
    }
    authorizers, default_authorizers = _authorizers(resources)

    functions: dict[str, FunctionSpec] = {}
    routes: list[HttpRoute] = []
    sqs_sources: list[SqsSource] = []
    schedules: list[ScheduleSource] = []
    stream_sources: list[StreamSource] = []
    event_rules: list[RuleSource] = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != FUNCTION_TYPE:
            continue
        props = resource.get("Properties") or {}
        functions[logical_id] = _function_spec(path.parent, logical_id, props, function_globals)
        for event in (props.get("Events") or {}).values():
            event_props = event.get("Properties") or {}
            if event.get("Type") == "HttpApi":
                routes.append(_http_route(logical_id, event_props, default_authorizers))
            elif event.get("Type") == "SQS":
                queue_id = _ref_target(event_props.get("Queue"))
                if queue_id is None:  # a queue outside the template
                    continue
                sqs_sources.append(
                    SqsSource(
                        function_id=logical_id,
                        queue_id=queue_id,
                        batch_size=int(event_props.get("BatchSize", 10)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (event_props.get("FunctionResponseTypes") or ()),
                    )
                )
            elif event.get("Type") == "DynamoDB":
                table_id = _ref_target(event_props.get("Stream"))
                if table_id is not None:
                    stream_sources.append(_stream_source(logical_id, table_id, event_props))
            elif event.get("Type") == "EventBridgeRule" and isinstance(
                    event_props.get("Pattern"), dict):
                event_rules.append(RuleSource(logical_id, event_props["Pattern"]))
            elif event.get("Type") == "Schedule" and event_props.get("Enabled", True):
                expression = event_props.get("Schedule")
                if isinstance(expression, str) and expression.startswith("rate("):
                    schedules.append(ScheduleSource(logical_id, parse_rate(expression)))
    return Template(
        path=path,
        resources=resources,
        functions=functions,
        routes=routes,
        sqs_sources=sqs_sources,
        authorizers=authorizers,
        parameters=parameters,
        schedules=schedules,
        stream_sources=stream_sources,
        event_rules=event_rules,
        globals=document.get("Globals") or {},
        conditions=document.get("Conditions") or {},
    )
