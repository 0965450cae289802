"""S3 objects: code, large inputs and results, logs, CSV exports. Keys come from ids, never
from names."""

from __future__ import annotations

from typing import Any


def code_key(function_id: str, build_id: str) -> str:
    return f"code/{function_id}/{build_id}.zip"


def upload_key(function_id: str, upload_id: str) -> str:
    """An archive uploaded with a presigned PUT, until a build takes it (a day at most)."""
    return f"uploads/{function_id}/{upload_id}.zip"


def export_key(function_id: str, export_id: str) -> str:
    """A CSV export too large to answer inline, until its presigned GET has been used (the
    Bucket's lifecycle rule removes exports/ after a day)."""
    return f"exports/{function_id}/{export_id}.csv"


def task_key(task_id: str, name: str) -> str:
    return f"tasks/{task_id}/{name}"


def attempt_key(task_id: str, attempt_id: str, name: str) -> str:
    """An output of one attempt at a task. Attempts never share a key: an attempt that lost
    the task (failed by convergence, delivered twice) cannot overwrite the winner's objects."""
    return f"tasks/{task_id}/{attempt_id}/{name}"


class BlobStore:
    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_unless_over(self, key: str, limit: int) -> bytes | None:
        """The object, or None when it is larger than `limit` bytes (then not read): one
        request either way."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key)
        if int(answer["ContentLength"]) > limit:
            answer["Body"].close()
            return None
        return answer["Body"].read()

    def head(self, key: str, limit: int) -> tuple[bytes, int]:
        """The object's first `limit` bytes and its whole size (one ranged GET)."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        total = str(answer.get("ContentRange") or "").rpartition("/")[2]
        data = answer["Body"].read()
        return data, int(total) if total.isdigit() else len(data)

    def size(self, key: str) -> int | None:
        """The object's size in bytes, None when there is none."""
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def upload_url(self, key: str, size: int, content_type: str, expires_s: int) -> str:
        """A presigned PUT of exactly `size` bytes (the length is signed, so S3 refuses any
        other) to `key`, valid for `expires_s`."""
        return self.client.generate_presigned_url(
            "put_object", ExpiresIn=expires_s, HttpMethod="PUT",
            Params={"Bucket": self.bucket, "Key": key, "ContentLength": size,
                    "ContentType": content_type})

    def download_url(self, key: str, content_type: str, expires_s: int,
                     filename: str | None = None) -> str:
        """A presigned GET of `key` that answers with `content_type` (and, given a filename,
        as an attachment of that name)."""
        params = {"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type}
        if filename is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", ExpiresIn=expires_s,
                                                  Params=params)

    # Multipart uploads: an object written a part at a time (every part but the last at least
    # 5 MiB, S3's minimum), so its writer holds one part, never the whole object. All need
    # s3:PutObject on the key but abort, which needs s3:AbortMultipartUpload.

    def create_upload(self, key: str, content_type: str) -> str:
        """A new multipart upload of `key`: its upload id."""
        answer = self.client.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                     ContentType=content_type)
        return answer["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        """Part `number` (1-based) of the upload: what complete_upload needs of it."""
        answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                         PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """The object, from the parts uploaded (in order)."""
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": parts})

    def abort_upload(self, key: str, upload_id: str) -> None:
        """The upload dropped with its parts (S3 keeps, and bills, the parts of an upload
        neither completed nor aborted until the Bucket's abort-incomplete rule removes them)."""
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
