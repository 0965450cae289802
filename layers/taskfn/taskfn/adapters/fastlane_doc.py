"""fastlane's jobs API in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from taskfn import apidoc

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "description": "naive UTC, datetime.isoformat()"}
URL = {"type": "string", "format": "uri"}
LINK = {"type": "object", "required": ["id", "url"], "properties": {"id": STRING, "url": URL}}
STATUS = {"type": "string", "enum": ["enqueued", "pulling", "running", "done", "failed",
                                     "timedout", "expired"]}
HOOKS = {"type": "object", "properties": {
    event: {"type": "array", "items": {}} for event in ("succeeds", "fails", "finishes")}}

EXECUTION = {
    "type": "object",
    "required": ["executionId", "createdAt", "status", "exitCode", "image", "command"],
    "properties": {
        "executionId": STRING, "createdAt": TIME, "requestIPAddress": STRING,
        "startedAt": TIME, "finishedAt": TIME, "image": STRING, "command": STRING,
        "metadata": {"type": "object"}, "status": STATUS,
        "exitCode": {"type": ["integer", "null"]}, "log": STRING, "error": STRING,
        "url": URL},
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "FastlaneError": {"type": "object", "required": ["error"],
                      "properties": {"error": STRING, "operation": STRING}},
    "FastlanePage": {
        "type": "object",
        "required": ["items", "total", "page", "pages", "perPage", "hasNext", "hasPrev",
                     "nextUrl", "prevUrl"],
        "properties": {
            "items": {"type": "array", "items": {
                "type": "object",
                "required": ["taskId", "createdAt", "lastModifiedAt", "url", "jobsCount"],
                "properties": {"taskId": STRING, "createdAt": TIME, "lastModifiedAt": TIME,
                               "url": URL, "jobsCount": {"type": "integer"}}}},
            "total": {"type": "integer"}, "page": {"type": "integer"},
            "pages": {"type": "integer"}, "perPage": {"type": "integer"},
            "hasNext": {"type": "boolean"}, "hasPrev": {"type": "boolean"},
            "nextUrl": NULLABLE_STRING, "prevUrl": NULLABLE_STRING}},
    "FastlaneJobPayload": {
        "type": "object", "required": ["image", "command"],
        "description": "At most one of startAt, startIn and cron.",
        "properties": {
            "image": STRING, "command": STRING,
            "envs": {"type": "object", "additionalProperties": STRING},
            "metadata": {"type": "object"},
            "retries": {"type": "integer", "minimum": 0, "maximum": 8},
            "timeout": {"type": "number", "exclusiveMinimum": 0,
                        "description": "seconds, at most 1800 (larger is cut to 1800)"},
            "expiration": {"type": "number", "description": "unix time"},
            "startAt": {"type": "number"}, "startIn": STRING, "cron": STRING,
            "webhooks": HOOKS, "notify": HOOKS,
            "additionalDNSEntries": {"type": "object", "additionalProperties": STRING}}},
    "FastlaneEnqueued": {
        "type": "object",
        "required": ["taskId", "jobId", "executionId", "executionUrl", "queueJobId", "jobUrl",
                     "taskUrl"],
        "properties": {"taskId": STRING, "jobId": STRING, "executionId": NULLABLE_STRING,
                       "executionUrl": NULLABLE_STRING, "queueJobId": NULLABLE_STRING,
                       "jobUrl": URL, "taskUrl": URL}},
    "FastlaneGroup": {
        "type": "object", "required": ["taskId", "jobs"],
        "properties": {"taskId": STRING, "jobs": {"type": "array", "items": {
            "type": "object", "required": ["id", "createdAt", "url"],
            "properties": {"id": STRING, "createdAt": TIME, "url": URL}}}}},
    "FastlaneJobDetails": {
        "type": "object", "required": ["task", "job"],
        "properties": {"task": LINK, "job": {
            "type": "object",
            "required": ["id", "createdAt", "image", "command", "lastModifiedAt", "taskId",
                         "scheduled", "executionCount", "requestIPAddress", "metadata",
                         "executions"],
            "properties": {
                "id": STRING, "createdAt": TIME, "image": STRING, "command": STRING,
                "lastModifiedAt": TIME, "taskId": STRING, "scheduled": {"type": "boolean"},
                "executionCount": {"type": "integer"}, "requestIPAddress": STRING,
                "metadata": {"type": "object",
                             "description": "envs whose names hold password, key, secret "
                                            "or client_id show \"***\""},
                "executions": {"type": "array", "maxItems": 20, "items": EXECUTION}}}}},
    "FastlaneExecutionDetails": {
        "type": "object", "required": ["task", "job", "execution"],
        "properties": {"task": LINK, "job": LINK, "execution": EXECUTION}},
    "FastlaneStatus": {
        "type": "object",
        "required": ["hosts", "containers", "queues", "tasks", "jobs", "fastlane"],
        "properties": {
            "hosts": {"type": "array"}, "containers": {"type": "object"},
            "queues": {"type": "object"},
            "tasks": {"type": "object", "properties": {"count": {"type": "integer"}}},
            "jobs": {"type": "object", "required": ["count", "scheduled"], "properties": {
                "count": {"type": "integer"},
                "scheduled": {"type": "array", "items": {
                    "type": "object", "required": ["id", "nextScheduledAt", "url", "stopUrl"],
                    "properties": {"id": STRING, "nextScheduledAt": TIME, "url": URL,
                                   "stopUrl": URL, "task": LINK}}}}},
            "fastlane": {"type": "object", "properties": {"version": STRING,
                                                          "executor": STRING}}}},
    "FastlaneJobSummary": {
        "type": "object", "required": ["taskId", "jobId", "jobUrl", "taskUrl"],
        "properties": {"taskId": STRING, "jobId": STRING, "jobUrl": URL, "taskUrl": URL}},
    "FastlaneStoppedExecution": {
        "type": "object", "required": ["task", "job", "execution"],
        "properties": {"task": LINK, "job": LINK, "execution": LINK}},
}
HEALTH = {
    "type": "object", "required": ["dynamodb", "s3", "sqs", "errors"],
    "properties": {
        "dynamodb": {"type": "boolean"}, "s3": {"type": "boolean"}, "sqs": {"type": "boolean"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["source", "message"],
            "properties": {"source": STRING, "message": STRING}}}},
}
PAGE = apidoc.query("page", {"type": "integer", "minimum": 1}, "the page, from 1 (10 a page)")
QUERY = apidoc.query("query", {"type": "string", "minLength": 1},
                     "whole words; a group whose id holds any of them is found")
EXIT_CODE = apidoc.header("Fastlane-Exit-Code", STRING,
                          "the execution's exit code, or None before it has one")


def output_answer(which: str) -> apidoc.Answer:
    text = {"stdout": "its stdout", "stderr": "its stderr (and why it failed)",
            "logs": "stdout, a line '-=-', then stderr"}[which]
    return apidoc.Answer(f"{text}; empty until the execution has finished",
                         {"type": "string"}, media="text/plain",
                         headers={"Fastlane-Exit-Code": {"schema": STRING}})
