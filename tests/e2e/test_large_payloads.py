"""What does not fit Lambda's 6 MB (issue 9): a zip over 4 MiB goes through a presigned upload
instead of the request, and a result over 4 MiB is a redirect to a presigned GET. Presigned
URLs in the local stack are checked as S3 checks them: a changed one is refused."""

from __future__ import annotations

import http.client
import io
import os
import zipfile
from urllib.parse import urlsplit

import pytest

from .conftest import Client

pytestmark = pytest.mark.e2e

BIG = 5 * 1024 * 1024
SOURCE = "def handler(event, context):\n    return 'from the big zip'\n"


def big_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("main.py", SOURCE)
        archive.writestr("data.bin", os.urandom(BIG))  # random bytes do not compress
    return buffer.getvalue()


def send(method: str, url: str, body: bytes = b"", headers: dict | None = None
         ) -> tuple[int, bytes, dict]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


@pytest.fixture(scope="module")
def function_id(user: Client) -> str:
    created = user.request("POST", "/v1/function", {"name": "big", "source": SOURCE})
    assert created.status == 201, created
    return created.json()["id"]


def test_a_zip_over_4_mib_in_the_request_is_413_pointing_at_the_upload(user, function_id):
    answer = user.request("POST", f"/v1/build/{function_id}", big_zip(),
                          content_type="application/octet-stream")
    assert answer.status == 413, answer
    assert "/upload" in answer.json()["detail"]


def test_a_large_zip_builds_through_a_presigned_upload(user, function_id):
    archive = big_zip()
    offered = user.request("POST", f"/v1/build/{function_id}/upload", {"size": len(archive)})
    assert offered.status == 201, offered
    upload = offered.json()
    assert upload["method"] == "PUT" and upload["expiresIn"] > 0
    status, body, _ = send("PUT", upload["url"], archive, upload["headers"])
    assert status == 200, body
    built = user.request("POST", f"/v1/build/{function_id}?upload={upload['uploadId']}")
    assert built.status == 201, built
    build = user.request("GET", f"/v1/build/{built.json()['id']}").json()
    assert build["status"] == "SUCCESS", build
    task = user.request("POST", f"/v1/task/{function_id}", {}).json()["id"]
    assert user.wait_result(task).body == b"from the big zip"
    # The upload is used up.
    again = user.request("POST", f"/v1/build/{function_id}?upload={upload['uploadId']}")
    assert again.status == 404 and again.json()["message"] == "upload not found"


def test_a_changed_or_misused_presigned_url_is_refused(user, function_id):
    archive = b"PK\x05\x06" + bytes(18)
    upload = user.request("POST", f"/v1/build/{function_id}/upload",
                          {"size": len(archive)}).json()
    url, headers = upload["url"], upload["headers"]
    forged = url.replace(upload["uploadId"], "0" * 24)
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    flipped = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    for attempt in (forged, flipped, url.replace("X-Amz-Expires=900", "X-Amz-Expires=901")):
        status, body, _ = send("PUT", attempt, archive, headers)
        assert status == 403, (attempt, body)
    # Headers nobody signed: a copy of another object (another user's code) instead of the
    # upload, or new rights on it. S3 refuses unsigned x-amz-* headers; so must the guard.
    code = user.request("GET", f"/v1/function/{function_id}").json()["buildId"]
    for extra in ({"x-amz-copy-source": f"/taskfn/code/{function_id}/{code}.zip"},
                  {"x-amz-acl": "public-read"}, {"x-amz-meta-owner": "someone"}):
        status, body, _ = send("PUT", url, archive, {**headers, **extra})
        assert status == 403 and b"not signed" in body, (extra, body)
    status, _, _ = send("PUT", url, archive, {**headers, "Host": "127.0.0.1:99999"})
    assert status == 403
    status, _, _ = send("PUT", url, archive + b"x", {**headers,
                                                    "Content-Length": str(len(archive) + 1)})
    assert status == 403  # the length is signed
    status, _, _ = send("GET", url)
    assert status == 403  # signed for a PUT
    assert user.request("POST", f"/v1/build/{function_id}?upload={upload['uploadId']}"
                        ).status == 404
    refused = user.request("POST", f"/v1/build/{function_id}/upload", {"size": 60 * 2**20})
    assert refused.status == 413


def test_a_result_too_large_to_answer_is_a_redirect_to_it(user):
    created = user.request("POST", "/v1/function", {"name": "huge", "source": (
        "def handler(event, context):\n"
        "    return {'statusCode': 201, 'headers': {'Content-Type': 'text/plain'},\n"
        "            'body': 'x' * (5 * 1024 * 1024)}\n")})
    task = user.request("POST", f"/v1/task/{created.json()['id']}", {}).json()["id"]
    assert user.wait_result(task).status in (200, 303, 403)  # finished (urllib follows it)
    # Without following: a client must not send its token to S3 (S3 refuses two kinds of auth).
    status, body, headers = send("GET", f"{user.url}/v1/task/{task}/result",
                                 headers={"Authorization": f"Bearer {user.token}"})
    assert status == 303, body
    assert headers["x-taskfn-status"] == "201" and body == b""
    answer_location = headers["location"]
    status, body, headers = send("GET", answer_location)
    assert status == 200 and body == b"x" * (5 * 1024 * 1024)
    assert headers["content-type"] == "text/plain"
    # The URL is for that object and that answer only.
    location = answer_location
    status, _, _ = send("GET", location.replace("response-content-type=text%2Fplain",
                                                "response-content-type=text%2Fhtml"))
    assert status == 403


def test_a_result_that_grows_past_an_answer_once_escaped_is_a_redirect_too(user):
    """1.5 MiB of control characters is 9 MB as the JSON of a Lambda answer (six bytes each):
    no answer could carry it, whatever its raw size."""
    created = user.request("POST", "/v1/function", {"name": "nuls", "source": (
        "def handler(event, context):\n"
        "    return {'statusCode': 200, 'headers': {'Content-Type': 'text/plain'},\n"
        "            'body': '\\x00' * (3 * 512 * 1024)}\n")})
    task = user.request("POST", f"/v1/task/{created.json()['id']}", {}).json()["id"]
    user.wait_result(task)
    status, body, headers = send("GET", f"{user.url}/v1/task/{task}/result",
                                 headers={"Authorization": f"Bearer {user.token}"})
    assert status == 303, (status, body[:200])
    status, body, _ = send("GET", headers["location"])
    assert status == 200 and body == b"\x00" * (3 * 512 * 1024)


def test_logs_that_would_not_fit_an_answer_are_cut_and_counted(user):
    created = user.request("POST", "/v1/function", {"name": "noisy", "source": (
        "import sys\n"
        "def handler(event, context):\n"
        "    sys.stdout.write('\\x01' * (1024 * 1024))\n"
        "    sys.stderr.write('\\u00e9' * (512 * 1024))\n"
        "    return 'done'\n")})
    task = user.request("POST", f"/v1/task/{created.json()['id']}", {}).json()["id"]
    assert user.wait_result(task).body == b"done"
    logs = user.request("GET", f"/v1/task/{task}/logs")
    assert logs.status == 200, logs
    body = logs.json()
    assert body["stdout"] == "\x01" * len(body["stdout"]) and body["stdoutDropped"] > 0
    assert len(body["stdout"].encode()) + body["stdoutDropped"] == 1024 * 1024
    assert len(logs.body) <= 5 * 1024 * 1024
