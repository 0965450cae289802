"""GreenCloud's schedules (/v1/scheduled): request parsing and views."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from taskfn.adapters.greencloud import (
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    PAGE_DEFAULT,
    _whole,
    validation_detail,
)
from taskfn.errors import InvalidRequest
from taskfn.services.schedules import DESCRIPTION_MAX
from taskfn.stores.schedules import ScheduleRecord

CRON_MAX = 256


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    functionId: str = Field(min_length=1, max_length=64)
    cron: str = Field(min_length=1, max_length=CRON_MAX,
                      description="5-field Unix cron: minute hour day-of-month month "
                                  "day-of-week (README: Schedules)")
    timezone: str = Field(min_length=1, max_length=64, description="IANA, e.g. Europe/Berlin")
    description: str = Field("", max_length=DESCRIPTION_MAX)


class SchedulePatch(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")

    active: StrictBool = None
    cron: str = Field(None, min_length=1, max_length=CRON_MAX)
    timezone: str = Field(None, min_length=1, max_length=64)
    description: str = Field(None, max_length=DESCRIPTION_MAX)


def parse_new_schedule(body: dict[str, Any]) -> dict[str, Any]:
    try:
        request = ScheduleRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid schedule", validation_detail(error)) from error
    return {"function_id": request.functionId, "cron": request.cron,
            "timezone": request.timezone, "description": request.description}


def parse_schedule_patch(body: dict[str, Any]) -> dict[str, Any]:
    """The fields given (null is "not given"); nothing given is a 400 in the service."""
    try:
        given = SchedulePatch.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise InvalidRequest("invalid schedule", validation_detail(error)) from error
    return {key: value for key, value in given.items() if value is not None}


def parse_schedule_list(params: dict[str, str]) -> dict[str, Any]:
    """page (≥ 1, default 1), limit (3-999, default 10), functionId, timezone."""
    return {"page": _whole(params, "page", PAGE_DEFAULT, 1),
            "limit": _whole(params, "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX),
            "function_id": params.get("functionId"), "timezone": params.get("timezone")}


def schedule_list_item(schedule: ScheduleRecord) -> dict[str, Any]:
    return {"id": schedule.id, "active": schedule.active, "functionId": schedule.function_id,
            "cron": schedule.cron, "timezone": schedule.timezone,
            "description": schedule.description}


def schedule_view(schedule: ScheduleRecord) -> dict[str, Any]:
    return {"active": schedule.active, "functionId": schedule.function_id,
            "cron": schedule.cron, "timezone": schedule.timezone,
            "description": schedule.description,
            "inlinePayload": {"query": schedule.query, "body": schedule.payload_body,
                              "contentType": schedule.payload_content_type}}
