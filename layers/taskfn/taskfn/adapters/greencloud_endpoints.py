"""GreenCloud's public endpoints (reference/greencloud.md, Public endpoints): the bodies of
create and patch, checked to their bounds, and the views, in GreenCloud's field names."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from taskfn.adapters.greencloud import rfc3339, tags_view, validation_detail
from taskfn.errors import InvalidRequest
from taskfn.services.endpoints import EndpointDetail, EndpointPage
from taskfn.stores.endpoints import EndpointRecord
from taskfn.timezones import is_iana_zone

DESCRIPTION = r"^[ -~]*$"  # printable ASCII
HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
LIST_MAX = 100  # origins or addresses an endpoint lists
ORIGIN_MAX = 300
DAILY_MAX = 1_000_000_000


class TimeLimit(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", populate_by_name=True)

    start: StrictStr = Field(alias="from", pattern=HH_MM)
    to: StrictStr = Field(pattern=HH_MM)
    timezone: StrictStr = Field(min_length=1, max_length=64)


class EndpointRequest(BaseModel):
    """POST /v1/endpoint/{functionId} and PATCH /v1/endpoint/{endpointId}: the fields
    given, with these bounds; timeLimit null (or left out) is no window."""

    model_config = ConfigDict(defer_build=True, extra="ignore")

    description: StrictStr = Field(None, max_length=256, pattern=DESCRIPTION)
    tag: list[StrictStr] = Field(None, max_length=20)
    dailyLimit: StrictInt = Field(None, ge=-1, le=DAILY_MAX,
                                  description="calls a UTC day; -1: no limit (the default)")
    origin: list[StrictStr] = Field(None, max_length=LIST_MAX,
                                    description="unique https:// origins; none: any")
    ip: list[StrictStr] = Field(None, max_length=LIST_MAX,
                                description="unique IPv4 addresses; none: any")
    timeLimit: TimeLimit | None = None


def _origin(text: str) -> str:
    """An https origin (scheme, host, port), in the form browsers send: lower case, no
    trailing slash."""
    if len(text) > ORIGIN_MAX:
        raise ValueError(f"at most {ORIGIN_MAX} characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        raise ValueError(f"{text[:60]!r} is not a URL") from error
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{text[:60]!r} is not an https:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc \
            or re.search(r"\s", text):
        raise ValueError(f"{text[:60]!r}: an origin is scheme and host (and port) only")
    try:  # as browsers send it: the host IDNA-encoded, the default port left out
        host = (f"[{parts.hostname}]" if ":" in parts.hostname
                else parts.hostname.encode("idna").decode())
    except UnicodeError as error:
        raise ValueError(f"{text[:60]!r}: the host is not a valid name") from error
    port = "" if parts.port in (None, 443) else f":{parts.port}"
    return f"https://{host}{port}"


def _unique(values: list[str], name: str) -> None:
    if len(set(values)) != len(values):
        raise InvalidRequest("invalid endpoint", f"{name}: each entry once")


def parse_endpoint(body: dict[str, Any], *, patch: bool = False) -> dict[str, Any]:
    """The record fields the body gives (EndpointRecord's names). For a create, the ones
    left out take their defaults; for a patch, only the given ones change."""
    try:
        request = EndpointRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidRequest("invalid endpoint", validation_detail(error)) from error
    given = request.model_fields_set
    fields: dict[str, Any] = {}
    if "description" in given:
        fields["description"] = request.description
    if "tag" in given:
        fields["tags"] = tuple(request.tag)
    if "dailyLimit" in given:
        fields["daily_limit"] = request.dailyLimit
    if "origin" in given:
        try:
            fields["origin"] = [_origin(value) for value in request.origin]
        except ValueError as error:
            raise InvalidRequest("invalid endpoint", f"origin: {error}") from error
        _unique(fields["origin"], "origin")
    if "ip" in given:
        try:
            fields["ip"] = [str(ipaddress.IPv4Address(value)) for value in request.ip]
        except ValueError as error:
            raise InvalidRequest("invalid endpoint", f"ip: {error}") from error
        _unique(fields["ip"], "ip")
    if "timeLimit" in given:
        window = request.timeLimit
        if window is not None:
            if window.start == window.to:
                raise InvalidRequest("invalid endpoint", "timeLimit: from and to are the "
                                     "same; leave timeLimit out for no window")
            if not is_iana_zone(window.timezone):
                raise InvalidRequest("invalid endpoint", f"timeLimit.timezone: unknown time "
                                     f"zone {window.timezone[:64]!r} (an IANA name, such "
                                     "as Europe/Berlin)")
        fields["time_limit"] = None if window is None else {
            "from": window.start, "to": window.to, "timezone": window.timezone}
    if not patch:
        fields = {key: value for key, value in fields.items() if value is not None}
    return fields


def endpoint_view(detail: EndpointDetail) -> dict[str, Any]:
    endpoint = detail.endpoint
    return {
        "id": endpoint.id,
        "functionId": endpoint.function_id,
        "description": endpoint.description,
        "tags": tags_view(endpoint.tags, detail.tags),
        "dailyLimit": endpoint.daily_limit,
        "origin": endpoint.origin,
        "ip": endpoint.ip,
        "timeLimit": endpoint.time_limit,
        "createdAt": rfc3339(endpoint.created_at),
    }


def endpoint_list_item(endpoint: EndpointRecord, tags: dict) -> dict[str, Any]:
    return {"id": endpoint.id, "description": endpoint.description,
            "tags": tags_view(endpoint.tags, tags), "createdAt": rfc3339(endpoint.created_at)}


def endpoint_page_view(page: EndpointPage, *, limit: int) -> dict[str, Any]:
    from taskfn.adapters.greencloud import page_view

    return page_view([endpoint_list_item(e, page.tags) for e in page.endpoints],
                     total=page.total, limit=limit)
