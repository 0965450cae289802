"""fastlane's jobs API in the OpenAPI document."""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}

COMPONENTS: dict[str, dict[str, Any]] = {
    "FastlaneError": {"type": "object", "required": ["error"],
                      "properties": {"error": STRING, "operation": STRING}},
}
HEALTH = {
    "type": "object", "required": ["dynamodb", "s3", "sqs", "errors"],
    "properties": {
        "dynamodb": {"type": "boolean"}, "s3": {"type": "boolean"}, "sqs": {"type": "boolean"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["source", "message"],
            "properties": {"source": STRING, "message": STRING}}}},
}
