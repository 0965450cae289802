"""Coder's tasks API in the OpenAPI document (the SDK's types: seeds/coder-tasks-sdk.go.txt)."""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
NULL_UUID = {"type": ["string", "null"], "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
STATUS = {"type": "string", "enum": ["pending", "initializing", "active", "paused", "unknown",
                                     "error"]}
STATE = {"type": "string", "enum": ["working", "idle", "complete", "failed"]}
INPUT = {"type": "object", "required": ["input"], "properties": {"input": STRING}}

COMPONENTS: dict[str, dict[str, Any]] = {
    "CoderError": {
        "type": "object", "required": ["message"],
        "properties": {"message": STRING, "detail": STRING, "validations": {
            "type": "array", "items": {"type": "object", "required": ["field", "detail"],
                                       "properties": {"field": STRING, "detail": STRING}}}}},
    "CoderCreateTaskRequest": {
        "type": "object", "required": ["template_version_id", "input"],
        "properties": {
            "template_version_id": {**UUID, "description": "a build of one of your "
                                    "functions (its 24-hex id followed by 8 zeros)"},
            "template_version_preset_id": {**UUID, "description": "a preset of yours; the "
                                           "nil UUID for none"},
            "input": STRING,
            "name": {"type": "string", "maxLength": 32,
                     "pattern": "^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$"},
            "display_name": {"type": "string", "maxLength": 64}}},
    "CoderInput": INPUT,
    "CoderTaskStateEntry": {
        "type": "object", "required": ["timestamp", "state", "message", "uri"],
        "properties": {"timestamp": TIME, "state": STATE, "message": STRING, "uri": STRING}},
    "CoderTask": {
        "type": "object",
        "required": ["id", "organization_id", "owner_id", "owner_name", "name",
                     "display_name", "template_id", "template_version_id", "template_name",
                     "template_display_name", "template_icon", "workspace_id",
                     "workspace_name", "workspace_agent_id", "workspace_agent_lifecycle",
                     "workspace_agent_health", "workspace_app_id", "initial_prompt",
                     "status", "current_state", "created_at", "updated_at"],
        "properties": {
            "id": UUID, "organization_id": UUID, "owner_id": UUID, "owner_name": STRING,
            "owner_avatar_url": STRING, "name": STRING, "display_name": STRING,
            "template_id": UUID, "template_version_id": UUID, "template_name": STRING,
            "template_display_name": STRING, "template_icon": STRING,
            "workspace_id": NULL_UUID, "workspace_name": STRING,
            "workspace_status": {"type": "string", "enum": [
                "pending", "starting", "running", "stopped", "failed"]},
            "workspace_build_number": {"type": "integer",
                                       "description": "the conversation's current turn"},
            "workspace_agent_id": NULL_UUID, "workspace_agent_lifecycle": {"type": "null"},
            "workspace_agent_health": {"type": "null"}, "workspace_app_id": NULL_UUID,
            "initial_prompt": STRING, "status": STATUS,
            "current_state": {"oneOf": [{"$ref": "#/components/schemas/CoderTaskStateEntry"},
                                        {"type": "null"}]},
            "created_at": TIME, "updated_at": TIME}},
    "CoderTasks": {
        "type": "object", "required": ["tasks", "count"],
        "properties": {"tasks": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/CoderTask"}},
                       "count": {"type": "integer"}}},
    "CoderWorkspaceBuild": {
        "type": "object", "required": ["workspace_build", "workspace_build_id"],
        "properties": {"workspace_build_id": UUID, "workspace_build": {
            "type": "object", "required": ["id", "transition", "status", "created_at"],
            "properties": {"id": UUID, "transition": {"type": "string",
                                                      "enum": ["start", "stop"]},
                           "status": {"type": "string", "enum": ["running", "stopped"]},
                           "created_at": TIME, "build_number": {"type": "integer"},
                           "template_version_id": UUID}}}},
    "CoderLogs": {
        "type": "object", "required": ["logs"],
        "properties": {
            "logs": {"type": "array", "items": {
                "type": "object", "required": ["id", "content", "type", "time"],
                "properties": {"id": {"type": "integer"}, "content": STRING,
                               "type": {"type": "string", "enum": ["input", "output"]},
                               "time": TIME}}},
            "snapshot": {"type": "boolean"}, "snapshot_at": TIME}},
    "CoderPreset": {
        "type": "object", "required": ["id", "name"],
        "properties": {"id": UUID, "name": STRING,
                       "timeout": {"type": "integer", "minimum": 0, "maximum": 120},
                       "mem_size": {"type": "integer", "minimum": 0, "maximum": 2048},
                       "input": STRING, "created_at": TIME, "updated_at": TIME}},
}
