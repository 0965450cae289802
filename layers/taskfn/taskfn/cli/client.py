"""The HTTP client of the CLI (stdlib only): the public APIs, each API's error shape read back
into one line, and redirects to S3 followed without the token (S3 refuses two kinds of auth,
and the token must not leave for another host)."""

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

from taskfn.cli.config import Settings

TIMEOUT_S = 60
ERROR_BODY_MAX = 64 * 1024  # what an error answer may say is read this far, no further
ANSWER_MAX = 64 * 1024 * 1024  # a JSON answer (a page of a list, the jobs' outputs ≤ 4 MiB)


class ApiError(Exception):
    """An answer the command cannot go on from: the API's own message, what was asked, and
    the status, as one line."""

    def __init__(self, message: str, *, status: int = 0, method: str = "", path: str = ""):
        super().__init__(message)
        self.message, self.status, self.method, self.path = message, status, method, path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        if self.status:
            return f"{self.message} ({self.status} from {where})"
        return f"{self.message} ({where})" if where else self.message


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes
    method: str = ""
    path: str = ""

    def json(self) -> Any:
        """The body as JSON; anything else (an HTML page of a proxy) is an ApiError."""
        try:
            return json.loads(self.body)
        except ValueError:
            kind = self.content_type.split(";")[0].strip() or "no content type"
            raise ApiError(f"the answer is not JSON ({kind}, {len(self.body)} bytes): is "
                           "this the platform's API URL?", status=self.status,
                           method=self.method, path=self.path) from None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


def api_message(body: bytes, reason: str = "") -> str:
    """The message an error answer carries, whatever its API: GreenCloud's and Coder's
    {message, detail?}, fastlane's {error, operation} or its plain-text 400s, the Cell API's
    {error: {type, message}}. Folded to one line and bounded."""
    text = body.decode("utf-8", "replace").strip()
    message = ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(data.get("message"), str):
            message = data["message"]
            detail = data.get("detail")
            if isinstance(detail, str) and detail:
                message = f"{message}: {detail}"
        elif isinstance(error, str):
            message = error
        elif isinstance(error, dict):
            message = str(error.get("message") or error.get("type") or "")
    elif data is None:
        message = text
    message = " ".join(message.split()) or reason or "no message"
    return message if len(message) <= 300 else message[:297] + "..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx comes back as an answer: the caller follows it, without the token."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _WebOnly(urllib.request.HTTPRedirectHandler):
    """A presigned URL's own redirects, to http(s) only (urllib would follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.URLError(f"a redirect to {newurl.split('?')[0]!r} is refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoRedirect)
_FOLLOWER = urllib.request.build_opener(_WebOnly)


def web_url(url: str, what: str) -> str:
    """A URL the API handed over (a presigned upload or download): http(s) only, never
    file:// or ftp:// (urllib opens those too, a local file included)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ApiError(f"{what} is not an http(s) URL: {url.split('?')[0]!r}")
    return url


def read_bounded(response: Any, limit: int) -> bytes:
    """The whole answer, at most `limit` bytes (a larger one is an ApiError, not memory
    used), and all that its Content-Length announced."""
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(min(1024 * 1024, limit + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ApiError(f"the answer is larger than {limit} bytes")
    check_complete(response)
    return b"".join(parts)


def check_complete(response: Any) -> None:
    """After the last read: an answer shorter than its Content-Length broke off (http.client
    only stops reading, it says nothing)."""
    missing = getattr(response, "length", None)
    if missing:
        raise ApiError(f"the answer broke off, {missing} bytes short")


class Api:
    """One platform, one token. Every route accepts `Authorization: Bearer <token>`, the
    jobs API included."""

    def __init__(self, settings: Settings, timeout: float = TIMEOUT_S):
        self.base, self.token, self.timeout = settings.api, settings.token, timeout

    def url(self, path: str, query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
            ) -> str:
        items = list(query.items() if isinstance(query, Mapping) else query or [])
        items = [(k, v) for k, v in items if v is not None]
        # An argument that is not UTF-8 (bytes a shell passed) is sent as those bytes.
        encoded = urllib.parse.urlencode(items, encoding="utf-8", errors="surrogateescape")
        return self.base + path + ("?" + encoded if items else "")

    def open(self, method: str, path: str, *, query=None, body: Any = None,
             content_type: str | None = None, headers: Mapping[str, str] | None = None,
             ok: Sequence[int] = (200, 201, 204)):
        """The open response of a request whose status is in `ok` (a 303 to follow is
        followed, token dropped); any other answer is an ApiError with the API's message."""
        data: bytes | None
        if isinstance(body, dict | list):
            data, content_type = json.dumps(body).encode(), content_type or "application/json"
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        request = urllib.request.Request(self.url(path, query), data=data, method=method)
        request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            response = _OPENER.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            if error.code in (301, 302, 303, 307, 308) and error.code not in ok:
                location, redirect = error.headers.get("Location", ""), error.headers
                error.close()
                # A relative Location is the API's own host: still followed without the token.
                followed = self._follow(urllib.parse.urljoin(request.full_url, location),
                                        method, path)
                followed.redirected_from = redirect  # e.g. X-Taskfn-Status: the real status
                return followed
            if error.code in ok:
                return error
            try:
                body_text = error.read(ERROR_BODY_MAX)
            except (OSError, http.client.HTTPException):
                body_text = b""
            error.close()
            raise ApiError(api_message(body_text, error.reason), status=error.code,
                           method=method, path=path) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            raise ApiError(f"cannot reach {self.base}: {reason}", method=method,
                           path=path) from None
        except ValueError as error:  # http.client refusing a header or a URL
            raise ApiError(f"cannot send the request: {error}", method=method,
                           path=path) from None
        if response.status not in ok:
            response.close()
            raise ApiError(f"unexpected answer {response.status}", status=response.status,
                           method=method, path=path)
        return response

    def _follow(self, location: str, method: str, path: str):
        """A presigned URL: no Authorization header (S3 would refuse two auths)."""
        web_url(location, f"the redirect of {method} {path}")
        try:
            return _FOLLOWER.open(urllib.request.Request(location, method="GET"),
                                  timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise ApiError(api_message(error.read(ERROR_BODY_MAX), error.reason),
                           status=error.code, method=method,
                           path=path + " (redirected)") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            raise ApiError(f"cannot download {location.split('?')[0]}: "
                           f"{getattr(error, 'reason', None) or error}") from None

    def request(self, method: str, path: str, **options: Any) -> Answer:
        with self.open(method, path, **options) as response:
            try:
                body = read_bounded(response, ANSWER_MAX)
            except ApiError as error:
                raise ApiError(error.message, status=response.status, method=method,
                               path=path) from None
            except (OSError, http.client.HTTPException) as error:  # a timeout, a reset
                raise ApiError(f"the answer broke off: {type(error).__name__} {error}",
                               status=response.status, method=method, path=path) from None
            return Answer(response.status, response.headers, body, method, path)

    def get(self, path: str, **options: Any) -> Any:
        """The JSON of a GET."""
        return self.request("GET", path, **options).json()

    def paged(self, path: str, query: dict[str, str] | None = None, *, limit: int = 1000
              ) -> list[Any]:
        """Up to `limit` items of a cursor list (the next cursor in X-Next-Cursor)."""
        items: list[Any] = []
        cursor = None
        while len(items) < limit:
            page_query = {**(query or {}), "limit": str(min(1000, limit - len(items))),
                          **({"cursor": cursor} if cursor else {})}
            answer = self.request("GET", path, query=page_query)
            page = answer.json()
            if not isinstance(page, list):
                raise ApiError("the answer is not a list", status=answer.status,
                               method="GET", path=path)
            items.extend(page)
            cursor = answer.headers.get("X-Next-Cursor")
            if not cursor or not page:
                break
        return items[:limit]


def quote(segment: str) -> str:
    """One path segment (a group name may hold anything)."""
    return urllib.parse.quote(segment, safe="")
