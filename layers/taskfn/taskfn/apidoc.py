"""What a route says about itself in the OpenAPI document.

Each handler's resolver decorator carries its route's summary, body, answers and auth, built
here per API, so that every route documents its errors in its own API's shape and nobody
writes the same 401 twice. `taskfn.openapi` merges every handler's resolver into the one
document (openapi.json); Powertools keeps extensions only under `x-` names, so the request body
and the query parameters travel as `x-taskfn-body` and `x-taskfn-query` until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

TOKEN_SCHEME = "token"
COMPONENTS = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS + name}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's JSON Schema; its sub-models go to the components when merged."""
    return model.model_json_schema(ref_template=COMPONENTS + "{model}")


@dataclass(frozen=True)
class Api:
    """One of the documented APIs: its tag, and how its errors look."""

    tag: str
    error: str  # the component schema of its error body
    # Where its request errors go: their own statuses (GreenCloud), or 200 with the error in
    # the body (BBS).
    errors_in_body: bool = False


GREENCLOUD = Api("GreenCloud platform API", "GreenCloudError")
CELL = Api("Cell API (Diego BBS)", "CellError", errors_in_body=True)
CONTRACT = Api("Contract", "GreenCloudError")
FASTLANE = Api("fastlane jobs API", "FastlaneError")
CODER = Api("Coder tasks API", "CoderError")

STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found", 400: "Bad request",
    401: "Missing or unknown token", 403: "The token's scope does not allow this route",
    404: "Not found, or not the caller's", 409: "Conflict with the resource's state",
    413: "Request body too large",
    422: "The Idempotency-Key was used for another request", 429: "Too many requests",
}
# Statuses every API answers as themselves, even one whose errors are otherwise 200s.
OWN_STATUSES = (401, 403, 422)
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                   "description": "A retry with the same key and request within 24 hours "
                                  "answers as the first one did, and runs nothing again."}


@dataclass(frozen=True)
class Answer:
    description: str
    schema: dict[str, Any] | None = None
    media: str = "application/json"
    headers: dict[str, Any] = field(default_factory=dict)
    # Other media types the same status may come in, with their schemas.
    also: dict[str, dict[str, Any]] = field(default_factory=dict)


def json_body(schema: dict[str, Any], description: str = "", *, required: bool = True,
              media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "required": required,
            "content": {media: {"schema": schema}}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema,
            "description": description}


def route(
    api: Api,
    *,
    operation_id: str,
    summary: str,
    answers: dict[int, Answer],
    errors: tuple[int, ...] = (),
    body: dict[str, Any] | None = None,
    parameters: tuple[dict[str, Any], ...] = (),
    description: str | None = None,
    public: bool = False,
    text_errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    """The keywords of a resolver's route decorator. `errors` are the request errors the route
    may answer besides the token's 401 and 403 (which every authenticated route may);
    `text_errors` those of them it answers as plain text (fastlane's enqueue routes)."""
    responses: dict[int, Any] = {}
    for status, answer in answers.items():
        responses[status] = _response(answer)
    statuses = list(errors) if public else [401, 403, *errors]
    for status in statuses:
        if api.errors_in_body and status not in OWN_STATUSES:
            continue  # BBS answers them as 200 with the error inside: see the 200's schema
        if status in text_errors:
            responses[status] = _response(Answer(STATUS_TEXT[status], {"type": "string"},
                                                 media="text/plain"))
            continue
        responses[status] = _response(Answer(STATUS_TEXT[status], ref(api.error)))
    extensions: dict[str, Any] = {}
    if body is not None:
        extensions["x-taskfn-body"] = body
    if parameters:
        extensions["x-taskfn-query"] = list(parameters)
    keywords: dict[str, Any] = {
        "operation_id": operation_id,
        "summary": summary,
        "tags": [api.tag],
        "responses": responses,
        "security": [] if public else [{TOKEN_SCHEME: []}],
    }
    if description:
        keywords["description"] = description
    if extensions:
        keywords["openapi_extensions"] = extensions
    return keywords


def _response(answer: Answer) -> dict[str, Any]:
    response: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None or answer.media != "application/json":
        response["content"] = {answer.media: {"schema": answer.schema or {}}}
        for media, schema in answer.also.items():
            response["content"][media] = {"schema": schema}
    if answer.headers:
        response["headers"] = answer.headers
    return response
