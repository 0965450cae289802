"""GreenCloud's triggers (/v1/trigger): request parsing and views."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from taskfn.adapters.greencloud import (
    LIMIT_DEFAULT,
    PAGE_DEFAULT,
    _whole,
    rfc3339,
    tags_view,
    validation_detail,
)
from taskfn.errors import InvalidRequest
from taskfn.services.triggers import DESCRIPTION_MAX
from taskfn.stores.tags import TagRecord
from taskfn.stores.triggers import TriggerRecord

TRIGGER_LIMIT_MIN, TRIGGER_LIMIT_MAX = 3, 20  # the reference's bounds for this list


class TriggerRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    functionId: str = Field(min_length=1, max_length=64)
    nextId: str = Field(min_length=1, max_length=64)
    status: StrictInt = Field(ge=100, le=599, description="the HTTP status that fires it")
    tag: list[str] = Field([], max_length=50)
    includeResult: StrictBool
    description: str = Field("", max_length=DESCRIPTION_MAX)


class TriggerPatch(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    tag: list[str] = Field(None, max_length=50)
    status: StrictInt = Field(None, ge=100, le=599)
    includeResult: StrictBool = None
    description: str = Field(None, max_length=DESCRIPTION_MAX)


def parse_new_trigger(body: dict[str, Any]) -> dict[str, Any]:
    try:
        request = TriggerRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid trigger", validation_detail(error)) from error
    return {"function_id": request.functionId, "next_id": request.nextId,
            "status": request.status, "tags": request.tag,
            "include_result": request.includeResult, "description": request.description}


_FIELDS = {"tag": "tags", "status": "status", "includeResult": "include_result",
           "description": "description"}


def parse_trigger_patch(body: dict[str, Any]) -> dict[str, Any]:
    """The fields given (null is "not given"); nothing given is a 400 in the service."""
    try:
        given = TriggerPatch.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise InvalidRequest("invalid trigger", validation_detail(error)) from error
    return {_FIELDS[key]: value for key, value in given.items() if value is not None}


def parse_trigger_list(params: dict[str, str]) -> dict[str, Any]:
    """page (≥ 1, default 1), limit (3-20, default 10), functionId."""
    return {"page": _whole(params, "page", PAGE_DEFAULT, 1),
            "limit": _whole(params, "limit", LIMIT_DEFAULT, TRIGGER_LIMIT_MIN,
                            TRIGGER_LIMIT_MAX),
            "function_id": params.get("functionId")}


def trigger_list_item(trigger: TriggerRecord, known: dict[str, TagRecord]) -> dict[str, Any]:
    return {"id": trigger.id, "functionId": trigger.function_id, "nextId": trigger.next_id,
            "tags": tags_view(trigger.tags, known), "status": trigger.status,
            "includeResult": trigger.include_result, "createdAt": rfc3339(trigger.created_at)}


def trigger_view(trigger: TriggerRecord, known: dict[str, TagRecord]) -> dict[str, Any]:
    """GreenCloud's fields, and taskfn's stoppedChain: the last chain stopped at the depth
    limit ({taskId, reason, at}), null while none was."""
    stopped = None
    if trigger.stopped_task_id:
        stopped = {"taskId": trigger.stopped_task_id, "reason": trigger.stopped_reason,
                   "at": rfc3339(trigger.stopped_at)}
    return {"functionId": trigger.function_id, "nextId": trigger.next_id,
            "tags": tags_view(trigger.tags, known), "status": trigger.status,
            "includeResult": trigger.include_result, "description": trigger.description,
            "createdAt": rfc3339(trigger.created_at), "stoppedChain": stopped}
