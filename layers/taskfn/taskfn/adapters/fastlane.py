"""fastlane's jobs API (reference/fastlane.md): its error body {error, operation}."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from taskfn.api import json_response
from taskfn.errors import TaskfnError


def error_response(error: TaskfnError, operation: str = "") -> Response:
    """fastlane's JSON error: the message, and the operation that failed."""
    message = f"{error.message} ({error.detail})" if error.detail else error.message
    return json_response(error.status, {"error": message, "operation": operation})
