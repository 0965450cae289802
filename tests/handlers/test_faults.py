"""Faults the executor must survive (issue 4): DynamoDB throttling a share of calls. Only the
affected records go back to SQS, and every task still reaches a final state."""

from __future__ import annotations

import copy
import json
from typing import Any

from taskfn import wiring
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from tests.handlers.test_events import _modules, invoke, load_event
from tests.integration.helpers import ALICE


def records_for(task_ids: list[str]) -> dict[str, Any]:
    template = load_event("ExecutorFunction")["Records"][0]
    records = []
    for number, task_id in enumerate(task_ids):
        record = copy.deepcopy(template)
        record.update(messageId=f"m-{number}", body=json.dumps({"taskId": task_id}))
        records.append(record)
    return {"Records": records}


class Throttle:
    """Answers ProvisionedThroughputExceeded to every UpdateItem that names a chosen task,
    before it reaches DynamoDB (as botocore does once its own retries are spent)."""

    def __init__(self, task_ids: set[str]):
        self.task_ids = task_ids
        self.refused = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        body = params.get("body") or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        if not any(task_id in text for task_id in self.task_ids):
            return None
        self.refused += 1
        error = {"Error": {"Code": "ProvisionedThroughputExceededException",
                           "Message": "Rate of requests exceeds the allowed throughput."},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return ({"status_code": 400}, error)


def test_throttled_records_alone_go_back_and_every_task_finishes(backend):
    function = FunctionService.from_env().create(ALICE, NewFunction(
        name="noop", source="def handler(event, context):\n    return 'ok'\n"))
    tasks = TaskService.from_env()
    task_ids = [tasks.create(ALICE, function.id, body=None, query={}, size=0).task_guid
                for _ in range(4)]
    # The first task loads the handler and runs untroubled.
    assert invoke("ExecutorFunction", records_for(task_ids[:1])) == {"batchItemFailures": []}
    client = _modules["ExecutorFunction"].executor.tasks.table.client
    throttle = Throttle({task_ids[1], task_ids[3]})
    client.meta.events.register_first("before-call.dynamodb.UpdateItem", throttle)
    try:
        answer = invoke("ExecutorFunction", records_for(task_ids[1:]))
    finally:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", throttle)

    assert throttle.refused >= 2
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-2"}]}
    states = [wiring.tasks().get(task_id).state for task_id in task_ids]
    assert states == ["Completed", "Pending", "Completed", "Pending"]

    # SQS delivers the two failed records again; DynamoDB has recovered.
    again = invoke("ExecutorFunction", records_for([task_ids[1], task_ids[3]]))
    assert again == {"batchItemFailures": []}
    for task_id in task_ids:
        task = wiring.tasks().get(task_id)
        assert (task.state, task.response_status) == ("Completed", 200)
