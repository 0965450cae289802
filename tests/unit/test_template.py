"""template.yaml and the code agree: routes ↔ handlers, API Gateway's path-variable rule,
one shared environment, and the layers every function needs."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

from taskfn.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")


def test_every_route_has_a_handler_file_and_every_handler_file_a_function():
    for route in TEMPLATE.routes:
        spec = TEMPLATE.functions[route.function_id]
        module, attribute = spec.handler.split(".")
        source = (spec.code_uri / f"{module}.py").read_text()
        assert f"{attribute} =" in source or f"def {attribute}(" in source, route
    handler_files = {p.resolve() for p in (ROOT / "functions").rglob("*.py")}
    declared = {
        (spec.code_uri / f"{spec.handler.split('.')[0]}.py").resolve()
        for spec in TEMPLATE.functions.values()
    }
    assert handler_files == declared


def test_one_route_per_handler_and_no_duplicate_routes():
    keys = [(r.method, r.path) for r in TEMPLATE.routes]
    assert len(keys) == len(set(keys))
    # One endpoint per handler (the contract's document, page and assets are one, and the
    # console's page and files); only the
    # events stream answers two methods (EventSource GETs, BBS POSTs).
    paths = defaultdict(set)
    for route in TEMPLATE.routes:
        paths[route.function_id].add(route.path)
    # fastlane's GET routes answer with and without a trailing slash (one handler, two routes).
    twins = {f for f, p in paths.items() if len(p) == 2 and len({q.rstrip("/") for q in p}) == 1}
    # fastlane's stdout, stderr and logs of one execution are one handler (three twins).
    outputs = {f for f, p in paths.items() if len(p) == 6 and {
        q.rstrip("/").rsplit("/", 1)[1] for q in p} == {"stdout", "stderr", "logs"}}
    # fastlane's stream page and /ws: a job's (its last execution) and one execution's.
    follows = {f for f, p in paths.items() if len(p) == 4 and len(
        {q.rstrip("/").rsplit("/", 1)[1] for q in p}) == 1 and {
        "/".join(q.rstrip("/").split("/")[5:-1]) for q in p} == {"", "executions/{executionId}"}}
    # fastlane's healthcheck: its twins and the root, as upstream serves it.
    health = {f for f, p in paths.items() if p == {"/healthcheck", "/healthcheck/", "/"}}
    # Coder's pause and resume: under /api/experimental, as its client calls them, and /api/v2.
    coder = {f for f, p in paths.items() if len(p) == 2 and {
        q.replace("/api/experimental/", "/api/v2/", 1) for q in p} == {
        q for q in p if q.startswith("/api/v2/")}}
    assert {f for f, p in paths.items() if len(p) > 1} - twins - outputs - follows - \
        health - coder == {"DocsFunction", "ConsoleFunction"}
    assert coder == {"CoderPauseTaskFunction", "CoderResumeTaskFunction"}
    # Every route of those has its twin.
    slashed = [r.path for r in TEMPLATE.routes if r.function_id in twins | outputs | follows]
    assert all(p.rstrip("/") in slashed and p.rstrip("/") + "/" in slashed for p in slashed)
    methods = {f: {r.method for r in TEMPLATE.routes if r.function_id == f} for f in paths}
    assert {f for f, m in methods.items() if len(m) > 1} == {"TaskEventsFunction"}


def test_a_path_position_has_one_variable_name_across_methods():
    """API Gateway rejects `/v1/task/{functionId}` beside `/v1/task/{taskId}` at deploy time
    (ConflictException) though `sam validate --lint` passes."""
    names: dict[tuple[str, int], set[str]] = defaultdict(set)
    for route in TEMPLATE.routes:
        parts = route.path.strip("/").split("/")
        for position, part in enumerate(parts):
            if part.startswith("{"):
                names[(parts[0] + "/" + "/".join(parts[1:position]), position)].add(part)
    conflicts = {key: found for key, found in names.items() if len(found) > 1}
    assert conflicts == {}


def test_environment_lives_in_globals_only():
    """The local stack runs every function in one process, with one environment."""
    for logical_id, resource in TEMPLATE.resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "Environment" not in resource.get("Properties", {}), logical_id


def test_every_route_but_the_contract_s_and_the_public_endpoints_is_authenticated():
    public = {route.path for route in TEMPLATE.routes if route.authorizer is None}
    assert public == {"/openapi.json", "/docs", "/docs/{asset}",
                      "/console", "/console/{asset}",  # the console's files (its calls: a token)
                      "/gc/{id}", "/gc/{id}/result",  # public endpoints: no token
                      "/healthcheck", "/healthcheck/", "/"}  # fastlane's: booleans only
    assert all(route.authorizer == "TokenAuthorizer" for route in TEMPLATE.routes
               if route.path not in public)


def test_the_executor_reports_batch_item_failures_and_the_queue_has_a_dlq():
    (source,) = [s for s in TEMPLATE.sqs_sources if s.function_id == "ExecutorFunction"]
    assert source.report_batch_item_failures
    queue = TEMPLATE.resources[source.queue_id]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1
    executor_timeout = TEMPLATE.functions["ExecutorFunction"].timeout
    assert queue["VisibilityTimeout"] >= executor_timeout
    # A whole batch of tasks at the longest timeout (120 s) fits in one invocation.
    assert source.batch_size * 120 < executor_timeout


def test_callbacks_have_their_own_queue_function_and_dlq():
    (source,) = [s for s in TEMPLATE.sqs_sources if s.function_id == "CallbackFunction"]
    assert source.queue_id == "CallbackQueue"
    assert source.report_batch_item_failures
    assert source.batch_size == 10
    queue = TEMPLATE.resources["CallbackQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1
    timeout = TEMPLATE.functions["CallbackFunction"].timeout
    assert queue["VisibilityTimeout"] >= timeout
    # Ten callbacks at three attempts of the default 5 s timeout fit in one invocation.
    assert source.batch_size * 3 * 5 < timeout
    # Private callback URLs are only for the local stack, never in the deployed environment.
    assert "ALLOW_PRIVATE_CALLBACKS" not in TEMPLATE.globals["Function"]["Environment"][
        "Variables"]


# Which queues each function sends to, from the code: a create or desire dispatches, the
# executor and a cell's failed completion dispatch a retry, the converger dispatches and kicks
# callbacks, and the stream queues callbacks. Least privilege: nobody else may send.
SENDS = {
    "CreateTaskFunction": {"TaskQueue"},
    "CellDesireTaskFunction": {"TaskQueue"},
    "CellCompleteTaskFunction": {"TaskQueue"},
    # A rejected launch goes back to the queue; a launched one's timeout is watched.
    "ExecutorFunction": {"TaskQueue", "ContainerWatchQueue"},
    "ConvergerFunction": {"TaskQueue", "CallbackQueue"},
    "CallbackEnqueueFunction": {"CallbackQueue", "StreamDeadLetterQueue"},
    "EventsFunction": {"StreamDeadLetterQueue"},
    "TriggerFireFunction": {"TaskQueue", "StreamDeadLetterQueue"},  # triggers: chained tasks
    # A resume, and a delete, send on the tasks held for the function (services.holds).
    "TogglePauseFunction": {"TaskQueue"},
    "DeleteFunctionFunction": {"TaskQueue"},
    "CallEndpointFunction": {"TaskQueue"},  # a public endpoint's call creates a task
    # Schedules: a try, and each fire, create a task.
    "TryScheduleFunction": {"TaskQueue"},
    "RunScheduleFunction": {"TaskQueue"},
    # fastlane: a POST or PUT of a job runs it at once.
    "EnqueueJobFunction": {"TaskQueue"},
    "UpsertJobFunction": {"TaskQueue"},
    "RetryJobFunction": {"TaskQueue"},  # a new run of the job
    "ContainerEventsFunction": {"TaskQueue"},  # a non-zero exit's retry
    "ContainerWatchFunction": {"ContainerWatchQueue"},  # a watch not yet due, again
    # Webhooks and e-mails: the stream queues them; a failed one is queued again.
    "JobReactionsFunction": {"JobWebhookQueue", "JobNotifyQueue", "StreamDeadLetterQueue"},
    "JobHooksFunction": {"JobWebhookQueue", "JobNotifyQueue"},
    # Live logs: a new connection to its pump; the pump's handovers and waits.
    "WsConnectFunction": {"LogPumpQueue"},
    "LogPumpFunction": {"LogPumpQueue"},
    # Coder's agent tasks: a create queues the first turn, a send the next.
    "CoderCreateTaskFunction": {"TaskQueue"},
    "CoderSendTaskFunction": {"TaskQueue"},
}


def test_functions_may_send_to_exactly_the_queues_their_code_sends_to():
    granted = {}
    for logical_id, resource in TEMPLATE.resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        queues = {
            policy["SQSSendMessagePolicy"]["QueueName"]["Fn::GetAtt"][0]
            for policy in resource["Properties"].get("Policies", [])
            if isinstance(policy, dict) and "SQSSendMessagePolicy" in policy
        }
        if queues:
            granted[logical_id] = queues
    assert granted == SENDS


# --- isolation "lambda": the functions' own Lambdas and exactly the rights they need ---------


def _statements(function_id: str) -> list[dict]:
    """The inline statements of a function's Policies, inside their Fn::If where they are."""
    found = []
    for policy in TEMPLATE.resources[function_id]["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            condition, when, otherwise = policy["Fn::If"]
            assert condition == "IsolatedByLambda" and otherwise == {"Ref": "AWS::NoValue"}
            policy = when
        if isinstance(policy, dict) and "Statement" in policy:
            found += policy["Statement"]
    return found


def _is_function_prefix(resource: object) -> bool:
    """`arn:…:function:tfn-<stack id's first 8 hex>-*` and nothing wider."""
    if not isinstance(resource, dict) or "Fn::Sub" not in resource:
        return False
    text, variables = resource["Fn::Sub"]
    return text.endswith(":lambda:${AWS::Region}:${AWS::AccountId}:function:tfn-${Id}-*") and (
        variables == {"Id": {"Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [
            2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]}})


def test_isolation_is_a_parameter_and_lambda_is_its_default():
    assert TEMPLATE.parameters["Isolation"] == "lambda"
    variables = TEMPLATE.globals["Function"]["Environment"]["Variables"]
    assert variables["ISOLATION"] == {"Ref": "Isolation"}
    assert variables["FUNCTION_ROLE_ARN"] == {
        "Fn::If": ["IsolatedByLambda", {"Fn::GetAtt": ["FunctionRole", "Arn"]}, ""]}


def test_the_role_of_function_lambdas_grants_nothing():
    role = TEMPLATE.resources["FunctionRole"]
    assert role["Condition"] == "IsolatedByLambda"
    assert set(role["Properties"]) == {"AssumeRolePolicyDocument", "Tags"}
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                     "Action": "sts:AssumeRole"}


# Every lambda: or iam: right in the template, by function: what its code calls, and only on
# the functions' own Lambdas (ListFunctions cannot be scoped; PassRole is the empty role's).
LAMBDA_RIGHTS = {
    "CreateFunctionFunction": "deploy",
    "CreateBuildFunction": "deploy",
    "DeleteFunctionFunction": {"lambda:DeleteFunction"},
    # …and fastlane jobs' Fargate tasks get ECS's execution role (pull, logs; never the
    # job's own code).
    "ExecutorFunction": {"lambda:InvokeFunction", "iam:PassRole"},
    "CleanupFunctionLambdasFunction": {"lambda:ListFunctions", "lambda:DeleteFunction"},
    # New capabilities: the function's Lambda gets their memory and timeout.
    "SetCapabilitiesFunction": {"lambda:GetFunctionConfiguration",
                                "lambda:UpdateFunctionConfiguration"},
    # Schedules: their Scheduler schedules are given SchedulerRole.
    "CreateScheduleFunction": {"iam:PassRole"},
    "UpdateScheduleFunction": {"iam:PassRole"},
    "EnqueueJobFunction": {"iam:PassRole"},  # a scheduled job's schedule
    "UpsertJobFunction": {"iam:PassRole"},
}
DEPLOY = {"lambda:CreateFunction", "lambda:UpdateFunctionCode",
          "lambda:UpdateFunctionConfiguration", "lambda:GetFunctionConfiguration",
          "lambda:PublishVersion", "lambda:ListVersionsByFunction", "lambda:DeleteFunction",
          "lambda:TagResource", "iam:PassRole", "lambda:GetLayerVersion"}


def test_only_these_functions_touch_lambdas_and_only_the_functions_own():
    granted = {}
    for logical_id, resource in TEMPLATE.resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        actions = set()
        for statement in _statements(logical_id):
            listed = statement["Action"]
            listed = {listed} if isinstance(listed, str) else set(listed)
            if not any(action.startswith(("lambda:", "iam:")) for action in listed):
                continue  # the table's and the bucket's: see test_table_rights_are_by_…
            assert all(action.startswith(("lambda:", "iam:")) for action in listed), statement
            actions |= listed
            resource_ = statement["Resource"]
            if listed == {"iam:PassRole"} and resource_ == {
                    "Fn::GetAtt": ["SchedulerRole", "Arn"]}:  # schedules: Scheduler's role
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
            elif listed == {"iam:PassRole"} and resource_ == {
                    "Fn::GetAtt": ["JobExecutionRole", "Arn"]}:  # jobs: ECS's role
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
            elif listed == {"iam:PassRole"}:
                assert resource_ == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
            elif listed == {"lambda:GetLayerVersion"}:
                assert resource_ == {"Ref": "TaskfnLayer"}
            elif listed == {"lambda:ListFunctions"}:
                assert resource_ == "*"
            else:
                assert _is_function_prefix(resource_), (logical_id, statement)
        if actions:
            granted[logical_id] = actions
    assert granted == {name: DEPLOY if rights == "deploy" else rights
                       for name, rights in LAMBDA_RIGHTS.items()}


# --- the table's and the bucket's rights ------------------------------------------------------
# What each function may do is pinned to what its code calls by tests/handlers/test_rights.py
# (every call recorded against moto). Here, the shape every such grant has: item actions only
# (never a Scan, a batch write or a wildcard), on the table or an index it has, each limited
# by dynamodb:LeadingKeys to partitions of the key layout (stores/table.py); objects by prefix.

ITEM_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
# The prefixes of the key functions of stores/blobs.py: code/, tasks/, uploads/, ...
PREFIXES = sorted(set(re.findall(r'return f"([a-z]+)/', (
    ROOT / "layers/taskfn/taskfn/stores/blobs.py").read_text())))
KEY_PATTERN = re.compile(r"[A-Z]+(#([A-Z]+|\*))*")  # "TASK#*", "OWNER#*#FUNC", "OPEN"


def _actions(statement: dict) -> set[str]:
    listed = statement["Action"]
    return {listed} if isinstance(listed, str) else set(listed)


def _listed(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _functions() -> list[str]:
    return [logical_id for logical_id, resource in TEMPLATE.resources.items()
            if resource.get("Type") == "AWS::Serverless::Function"]


def test_no_function_holds_a_sam_template_of_the_whole_table_or_bucket():
    """DynamoDBCrudPolicy, DynamoDBReadPolicy, S3CrudPolicy...: every action on every item,
    index and object."""
    for logical_id in _functions():
        for policy in TEMPLATE.resources[logical_id]["Properties"].get("Policies", []):
            names = set(policy) if isinstance(policy, dict) else {policy}
            assert not {n for n in names if n.startswith(("DynamoDB", "S3"))}, logical_id


def test_table_rights_are_by_leading_key_and_bucket_rights_by_prefix():
    table = TEMPLATE.resources["Table"]["Properties"]
    indexes = {index["IndexName"] for index in table["GlobalSecondaryIndexes"]}
    index_arns = [{"Fn::Sub": f"${{Table.Arn}}/index/{name}"} for name in sorted(indexes)]
    objects = [{"Fn::Sub": f"${{Bucket.Arn}}/{prefix}/*"} for prefix in PREFIXES]
    for logical_id in _functions():
        for statement in _statements(logical_id):
            actions = _actions(statement)
            if not any(action.startswith(("dynamodb:", "s3:")) for action in actions):
                continue
            context = (logical_id, statement)
            assert statement["Effect"] == "Allow", context
            resources = _listed(statement["Resource"])
            if actions <= ITEM_ACTIONS:
                for resource in resources:
                    # an index only for Query (an index cannot be read by key, or written)
                    assert resource == {"Fn::GetAtt": ["Table", "Arn"]} or (
                        resource in index_arns and actions == {"dynamodb:Query"}), context
                assert set(statement) == {"Effect", "Action", "Resource", "Condition"}, context
                ((operator, keys),) = statement["Condition"].items()
                assert operator == "ForAllValues:StringLike", context
                assert set(keys) == {"dynamodb:LeadingKeys"}, context
                assert all(KEY_PATTERN.fullmatch(key) for key in keys["dynamodb:LeadingKeys"]), (
                    context)
            elif actions <= OBJECT_ACTIONS:
                assert set(statement) == {"Effect", "Action", "Resource"}, context
                assert all(resource in objects for resource in resources), context
            else:
                # S3 says NoSuchKey (not AccessDenied) only to a caller that may list the
                # bucket, for code that answers an expired object with a 404 (and the health
                # check lists a prefix nothing writes)
                assert actions == {"s3:ListBucket"}, context
                assert resources == [{"Fn::GetAtt": ["Bucket", "Arn"]}], context
                assert set(statement) == {"Effect", "Action", "Resource"}, context


def test_the_authorizer_may_read_token_items_and_nothing_else():
    (policy,) = TEMPLATE.resources["AuthorizerFunction"]["Properties"]["Policies"]
    assert policy == {"Statement": [{
        "Effect": "Allow", "Action": "dynamodb:GetItem",
        "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
        "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["TOKEN#*"]}}}]}


def test_deleting_the_stack_deletes_the_function_lambdas_first():
    resource = TEMPLATE.resources["FunctionLambdas"]
    assert resource["Type"] == "Custom::FunctionLambdas"
    assert resource["Condition"] == "IsolatedByLambda"
    properties = resource["Properties"]
    assert properties["ServiceToken"] == {
        "Fn::GetAtt": ["CleanupFunctionLambdasFunction", "Arn"]}
    # It refers to the role and layer the Lambdas use, so CloudFormation deletes it before.
    assert properties["Role"] == {"Fn::GetAtt": ["FunctionRole", "Arn"]}
    assert properties["Layer"] == {"Ref": "TaskfnLayer"}
    assert TEMPLATE.resources["CleanupFunctionLambdasFunction"]["Condition"] == \
        "IsolatedByLambda"


def test_the_executor_is_sized_for_what_it_runs():
    """Isolation process: a vCPU for user code; lambda: it only waits, billed meanwhile."""
    memory = TEMPLATE.resources["ExecutorFunction"]["Properties"]["MemorySize"]
    assert memory == {"Fn::If": ["IsolatedByLambda", 256, 1769]}


def test_the_table_and_the_bucket_outlive_the_stack():
    """Deleting the stack, or an update that replaces either, must not delete the data."""
    for logical_id, kind in (("Table", "AWS::DynamoDB::Table"), ("Bucket", "AWS::S3::Bucket")):
        resource = TEMPLATE.resources[logical_id]
        assert resource["Type"] == kind
        assert resource.get("DeletionPolicy") == "Retain", logical_id
        assert resource.get("UpdateReplacePolicy") == "Retain", logical_id


def test_the_powertools_layer_is_the_version_pyproject_pins():
    """The layer the functions run with is the Powertools the tests ran against: the two
    versions move together."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if d.startswith("aws-lambda-powertools")]
    exact = re.fullmatch(r"aws-lambda-powertools(\[[^\]]*\])?==(?P<version>\d+(\.\d+)*)", pin)
    assert exact, f"pyproject.toml must pin Powertools exactly, not {pin!r}"
    function_globals = TEMPLATE.globals["Function"]
    (architecture,) = function_globals["Architectures"]
    assert TEMPLATE.parameters["PowertoolsLayerArn"] == (
        f"/aws/service/powertools/python/{architecture}/{function_globals['Runtime']}/"
        f"{exact['version']}")


def test_the_authorizer_runs_for_every_request_and_caches_nothing_in_api_gateway():
    """No identity source, so a missing token reaches the route (401 in its API's shape); and
    the TTL said to be 0, since unset it is 300 s: with no identity source to key it, one
    caller's answer would then serve everybody."""
    auth = TEMPLATE.resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["TokenAuthorizer"]
    assert auth["Identity"] == {"ReauthorizeEvery": 0}
