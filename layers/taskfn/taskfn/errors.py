"""Domain errors. Each API adapter maps them to its own status codes and error body."""

from __future__ import annotations


class TaskfnError(Exception):
    """Base of every error a caller may see; `message` is safe to show."""

    status = 500
    kind = "InternalError"

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(TaskfnError):
    status = 400
    kind = "InvalidRequest"


class Unauthenticated(TaskfnError):
    status = 401
    kind = "Unauthorized"


class Forbidden(TaskfnError):
    """The caller is known but its token's scope does not allow the route."""

    status = 403
    kind = "Forbidden"


class NotFound(TaskfnError):
    """Unknown, and also another owner's: both answer 404, never 403."""

    status = 404
    kind = "ResourceNotFound"


class ResourceExists(TaskfnError):
    status = 409
    kind = "ResourceExists"


class Conflict(TaskfnError):
    status = 409
    kind = "Conflict"


class InvalidStateTransition(TaskfnError):
    status = 409
    kind = "InvalidStateTransition"


class RunningOnDifferentCell(TaskfnError):
    status = 409
    kind = "RunningOnDifferentCell"


class Unprocessable(TaskfnError):
    """Well-formed, but it cannot be done as asked: an Idempotency-Key reused for another
    request."""

    status = 422
    kind = "UnprocessableEntity"


class TooManyRequests(TaskfnError):
    """A limit of calls spent for now (a public endpoint's dailyLimit)."""

    status = 429
    kind = "TooManyRequests"


class PayloadTooLarge(TaskfnError):
    status = 413
    kind = "PayloadTooLarge"
