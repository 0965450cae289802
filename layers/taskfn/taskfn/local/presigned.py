"""Presigned S3 URLs in the local stack, checked as S3 checks them.

moto takes any URL with "Signature=" in it as signed without checking the signature, so behind
IAM a presigned URL would be either refused or, worse, forgeable by anybody on the machine.
The Guard in front of moto checks each presigned request itself (SigV4 query signing: the
signer's secret, the signed headers, the expiry), then hands it to moto signed in a header
with the same credentials, where moto's IAM checks the signer's rights as for any request.
"""

from __future__ import annotations

import hmac
import io
import time
from calendar import timegm
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
               "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature")
MAX_EXPIRES_S = 7 * 24 * 3600  # S3's own bound
UNSIGNED_OK = frozenset({"x-amz-content-sha256"})  # as S3 allows
MAX_BODY = 64 * 1024 * 1024


class Refused(Exception):
    """Why a presigned request is not let through."""


def is_presigned(environ: dict[str, Any]) -> bool:
    query = environ.get("QUERY_STRING", "")
    return "X-Amz-Signature=" in query and not environ.get("HTTP_AUTHORIZATION")


def _raw_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    return quote(environ.get("PATH_INFO", "/"), safe="/~")


def admit(environ: dict[str, Any], *, account_id: str, now: float | None = None) -> None:
    """Check the presigned request in `environ` and turn it into the same request signed in a
    header (in place); Refused when its signature, scope, headers or time do not hold."""
    try:
        _admit(environ, account_id, now)
    except (ValueError, KeyError, UnicodeError) as error:  # a malformed host, path or header
        raise Refused(f"malformed presigned request: {type(error).__name__}") from error


def _admit(environ: dict[str, Any], account_id: str, now: float | None) -> None:
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    params = dict(pairs)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise Refused("not a SigV4 presigned request")
    try:
        key_id, day, region, service, terminal = params["X-Amz-Credential"].split("/")
        stamp = params["X-Amz-Date"]
        expires = int(params["X-Amz-Expires"])
        signed = params["X-Amz-SignedHeaders"].split(";")
        given = params["X-Amz-Signature"]
        issued = timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except (KeyError, ValueError) as error:
        raise Refused("malformed presigned request") from error
    if service != "s3" or terminal != "aws4_request" or stamp[:8] != day:
        raise Refused("not signed for S3")
    if not 0 < expires <= MAX_EXPIRES_S or (now or time.time()) > issued + expires:
        raise Refused("the presigned request has expired")
    # S3 refuses x-amz-* headers nobody signed (x-amz-copy-source would turn the PUT into a
    # copy of any object, x-amz-acl change its rights); so does this.
    for name in environ:
        header = name[5:].lower().replace("_", "-") if name.startswith("HTTP_") else ""
        if header.startswith("x-amz-") and header not in signed and header not in UNSIGNED_OK:
            raise Refused(f"the header {header} was not signed")
    credentials = _credentials(account_id, key_id, params.get("X-Amz-Security-Token"))
    host = environ.get("HTTP_HOST", "")
    method = environ.get("REQUEST_METHOD", "GET")
    path = _raw_path(environ)
    unsigned_query = "&".join(part for part in environ.get("QUERY_STRING", "").split("&")
                              if not part.startswith("X-Amz-Signature="))
    headers = {}
    for name in signed:
        if name == "host":
            continue
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value is None and name in ("content-type", "content-length"):
            value = environ.get(name.upper().replace("-", "_"))
        if value is None:
            raise Refused(f"the signed header {name} is missing")
        headers[name] = value
    request = AWSRequest(method=method, url=f"http://{host}{path}?{unsigned_query}",
                         headers=headers)
    request.context["timestamp"] = stamp
    signer = S3SigV4QueryAuth(credentials, service, region, expires=expires)
    canonical = signer.canonical_request(request)
    if signer.signed_headers(signer.headers_to_sign(request)) != ";".join(signed):
        raise Refused("the signed headers do not match")
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, given):
        raise Refused("the signature does not match")
    # The same request, signed in a header, for moto (whose IAM then checks the rights).
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise Refused("body too large")
    body = environ["wsgi.input"].read(length) if length else b""
    rest = [(k, v) for k, v in pairs if k not in AUTH_PARAMS]
    query = urlencode(rest, quote_via=quote)
    plain = AWSRequest(method=method, url=f"http://{host}{path}" + (f"?{query}" if query else ""),
                       data=body, headers={k: v for k, v in headers.items()
                                           if k in ("content-type", "content-length")})
    S3SigV4Auth(credentials, service, region).add_auth(plain)
    for name, value in plain.headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    environ["QUERY_STRING"] = query
    for name in ("RAW_URI", "REQUEST_URI"):
        if name in environ:
            environ[name] = path + (f"?{query}" if query else "")
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def _credentials(account_id: str, key_id: str, token: str | None) -> Any:
    """The signer's credentials (botocore's) from moto's IAM and STS, as moto finds them for
    a request."""
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key

    headers = {"X-Amz-Security-Token": token} if token else {}
    try:
        return create_access_key(account_id, "aws", key_id, headers).create_credentials()
    except CreateAccessKeyFailure as error:
        raise Refused("unknown signer") from error
