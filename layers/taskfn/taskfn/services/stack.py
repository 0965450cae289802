"""The stack's custom resource FunctionLambdas: function Lambdas are made by builds, not by
CloudFormation, so when the stack is deleted this deletes them, and nothing outlives it."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from taskfn.stores.lambdas import FunctionLambdas

logger = logging.getLogger(__name__)
PHYSICAL_ID = "taskfn-function-lambdas"


def on_event(event: dict[str, Any], lambdas: FunctionLambdas | None) -> tuple[str, str]:
    """(status, reason) for one custom-resource request; only Delete does anything."""
    if event.get("RequestType") != "Delete" or lambdas is None:
        return "SUCCESS", "nothing to do"
    try:
        deleted = lambdas.delete_all()
    except Exception as error:  # the stack's deletion stops here, to be retried, not orphaned
        logger.exception("deleting the function Lambdas failed")
        return "FAILED", f"could not delete the function Lambdas: {error}"[:1000]
    return "SUCCESS", f"deleted {deleted} function Lambda(s)"


def respond(event: dict[str, Any], log_stream: str, status: str, reason: str) -> None:
    """Tell CloudFormation how the request went (its pre-signed URL, as cfn-response does)."""
    body = json.dumps({
        "Status": status, "Reason": f"{reason} (log stream {log_stream})"[:4000],
        "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": event["StackId"], "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"], "Data": {},
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
