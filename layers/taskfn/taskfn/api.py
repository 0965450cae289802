"""What every HTTP handler shares: the Powertools resolver, the caller, request parsing,
error mapping and the Lambda entry point. Handlers stay a few lines over this."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from taskfn import userjson
from taskfn.callers import Caller, Scope
from taskfn.errors import Forbidden, InvalidRequest, NotFound, TaskfnError, Unauthenticated
from taskfn.powertools import APIGatewayHttpResolver, Response

logger = Logger()

ErrorShape = Callable[[TaskfnError], Response]
USER_SCOPES = (Scope.USER, Scope.ADMIN)
# Routes only executors may call (BBS's internal task calls), and routes everyone may read.
CELL_SCOPES = (Scope.CELL, Scope.ADMIN)
ANY_SCOPE = (Scope.USER, Scope.CELL, Scope.ADMIN)


def resolver(error_shape: ErrorShape) -> APIGatewayHttpResolver:
    """A resolver whose every failure answers in the API's own error shape, never a bare 500."""
    app = APIGatewayHttpResolver()

    @app.exception_handler(TaskfnError)
    def _known(error: TaskfnError) -> Response:
        if error.status >= 500:
            logger.exception("request failed")
        return error_shape(error)

    @app.not_found
    def _no_route(_: Exception) -> Response:
        return error_shape(NotFound("route not found"))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_shape(TaskfnError("internal error"))

    return app


def entrypoint(app: APIGatewayHttpResolver) -> Callable[[dict, Any], dict]:
    """The Lambda handler: structured logs with the request's correlation id."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def handler(event: dict, context: Any) -> dict:
        return app.resolve(event, context)

    return handler


def caller(app: APIGatewayHttpResolver, scopes: Iterable[Scope] = USER_SCOPES) -> Caller:
    """The caller the authorizer identified. An unknown token is 401; a token whose scope
    does not allow the route is 403."""
    context = app.current_event.request_context.authorizer.get_lambda
    user = context.get("user") or ""
    if not user:
        raise Unauthenticated("missing or invalid token")
    found = Caller(
        user=user, scope=Scope(context.get("scope")), token_id=context.get("tokenId", ""),
        node=context.get("node") or "", shared=context.get("shared") == "1",
    )
    if found.scope not in tuple(scopes):
        raise Forbidden(f"a {found.scope.value} token cannot use this route")
    return found


def raw_body(app: APIGatewayHttpResolver) -> bytes:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError) as error:
            raise InvalidRequest("body is not valid base64") from error
    return body.encode()


def json_object(app: APIGatewayHttpResolver, *, limit: int) -> dict[str, Any]:
    """The body as a JSON object; anything else is a 400, too large a 413."""
    from taskfn.errors import PayloadTooLarge

    data = raw_body(app)
    if len(data) > limit:
        raise PayloadTooLarge("request body too large", f"at most {limit} bytes")
    value = userjson.loads(data or b"null")
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    return value


def idempotency_key(app: APIGatewayHttpResolver) -> str | None:
    """The request's Idempotency-Key header, if it has one (API Gateway lower-cases names)."""
    return (app.current_event.headers or {}).get("idempotency-key")


def query(app: APIGatewayHttpResolver) -> dict[str, str]:
    return dict(app.current_event.query_string_parameters or {})


def page_params(app: APIGatewayHttpResolver, *, default: int, maximum: int) -> tuple[
    int, str | None
]:
    """`limit` and `cursor` query parameters, checked."""
    params = query(app)
    raw = params.get("limit")
    limit = default
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError as error:
            raise InvalidRequest("limit must be an integer") from error
        if not 1 <= limit <= maximum:
            raise InvalidRequest(f"limit must be between 1 and {maximum}")
    return limit, params.get("cursor") or None


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def empty(status: int = 204) -> Response:
    return Response(status_code=status, body=None)
