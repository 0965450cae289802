"""template.yaml and the code agree: routes ↔ handlers, API Gateway's path-variable rule,
one shared environment, and the layers every function needs."""

from __future__ import annotations

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
    # One endpoint per handler; only the events stream answers two methods (EventSource
    # GETs, BBS POSTs).
    paths = defaultdict(set)
    for route in TEMPLATE.routes:
        paths[route.function_id].add(route.path)
    assert {len(p) for p in paths.values()} == {1}
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


def test_every_route_but_none_listed_is_authenticated():
    assert all(route.authorizer == "TokenAuthorizer" for route in TEMPLATE.routes)


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
    "ExecutorFunction": {"TaskQueue"},
    "ConvergerFunction": {"TaskQueue", "CallbackQueue"},
    "CallbackEnqueueFunction": {"CallbackQueue", "StreamDeadLetterQueue"},
    "EventsFunction": {"StreamDeadLetterQueue"},
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
    "ExecutorFunction": {"lambda:InvokeFunction"},
    "CleanupFunctionLambdasFunction": {"lambda:ListFunctions", "lambda:DeleteFunction"},
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
            actions |= listed
            resource_ = statement["Resource"]
            if listed == {"iam:PassRole"}:
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
