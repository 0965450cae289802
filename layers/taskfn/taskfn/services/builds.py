"""Builds: check an uploaded zip, keep it in S3, deploy it (isolation "lambda": as a new
version of the function's own Lambda), point the function at it.

The check is quick (no code runs) and a deploy takes seconds, so a build finishes inside its
request; PENDING is only the first entry of its timeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import ids, wiring
from taskfn.errors import InvalidRequest, NotFound, PayloadTooLarge
from taskfn.models import BuildRecord, BuildStatus, Caller, FunctionRecord, now_ns
from taskfn.runtime.packaging import MAX_ZIP_BYTES, check_zip, zip_from_source
from taskfn.services.ownership import owned
from taskfn.stores.blobs import BlobStore, code_key, upload_key
from taskfn.stores.lambdas import FunctionLambdas
from taskfn.stores.records import BuildStore, FunctionStore

logger = logging.getLogger(__name__)

# A zip in a request travels base64-encoded (a third more) in Lambda's 6 MB request payload,
# beside the rest of the event: what fits with room to spare. Larger ones go through S3.
DIRECT_UPLOAD_MAX_BYTES = 4 * 1024 * 1024
UPLOAD_EXPIRES_S = 900
ZIP_TYPE = "application/zip"
# How deep a page of the build list may lie (page × limit): a page reads the keys of every
# build before it, so the depth bounds a request's work.
LIST_DEPTH_MAX = 10_000


@dataclass(frozen=True)
class Upload:
    """Where to PUT an archive: the URL, the headers it was signed with, for how long."""

    id: str
    url: str
    headers: dict[str, str]
    expires_s: int


@dataclass(frozen=True)
class BuildPage:
    """One page of a build list, and how many builds the whole list holds."""

    builds: list[BuildRecord]
    total: int


def _stamp(status: BuildStatus, at_ns: int) -> dict[str, object]:
    return {"status": status.value, "time": str(at_ns // 1_000_000_000)}


class BuildService:
    def __init__(self, store: BuildStore, functions: FunctionStore, blobs: BlobStore,
                 lambdas: FunctionLambdas | None = None):
        self.store = store
        self.functions = functions
        self.blobs = blobs
        self.lambdas = lambdas

    @classmethod
    def from_env(cls) -> BuildService:
        return cls(wiring.builds(), wiring.functions(), wiring.blobs(),
                   wiring.function_lambdas())

    def create(self, caller: Caller, function_id: str, archive: bytes) -> BuildRecord:
        """A build of a zip sent in the request, which must fit what API Gateway and Lambda
        carry (6 MB, after base64)."""
        function = owned(self.functions.get, function_id, caller, "function")
        if len(archive) > DIRECT_UPLOAD_MAX_BYTES:
            raise PayloadTooLarge(
                "archive too large for a direct upload",
                f"at most {DIRECT_UPLOAD_MAX_BYTES} bytes in a request (it travels base64 in "
                f"Lambda's 6 MB); upload larger ones with POST /v1/build/{function_id}/upload",
            )
        return self._build(caller, function, archive)

    def function(self, caller: Caller, function_id: str) -> FunctionRecord:
        """The caller's function (404 otherwise), before anything of the request is read."""
        return owned(self.functions.get, function_id, caller, "function")

    def new_upload(self, function: FunctionRecord, size: Any) -> Upload:
        """A presigned PUT of exactly `size` bytes into the bucket, for a build from it."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidRequest("size: the archive's length in bytes, a positive integer")
        if size > MAX_ZIP_BYTES:
            raise PayloadTooLarge("archive too large", f"at most {MAX_ZIP_BYTES} bytes")
        upload_id = ids.new_id()
        key = upload_key(function.id, upload_id)
        url = self.blobs.upload_url(key, size, ZIP_TYPE, UPLOAD_EXPIRES_S)
        return Upload(upload_id, url, {"Content-Type": ZIP_TYPE, "Content-Length": str(size)},
                      UPLOAD_EXPIRES_S)

    def create_from_upload(self, caller: Caller, function_id: str, upload_id: str
                           ) -> BuildRecord:
        """A build of an archive uploaded with new_upload; the upload is removed after."""
        function = owned(self.functions.get, function_id, caller, "function")
        if not ids.is_id(upload_id):
            raise InvalidRequest("upload: an uploadId from POST /v1/build/{id}/upload")
        key = upload_key(function.id, upload_id)
        size = self.blobs.size(key)
        if size is None:
            raise NotFound("upload not found", "not uploaded yet, or expired (uploads last "
                           f"{UPLOAD_EXPIRES_S // 60} minutes to send and a day to build)")
        if size > MAX_ZIP_BYTES:
            raise PayloadTooLarge("archive too large", f"at most {MAX_ZIP_BYTES} bytes")
        record = self._build(caller, function, self.blobs.get(key))
        self.blobs.delete(key)
        return record

    def create_from_source(
        self, caller: Caller, function: FunctionRecord, source: str
    ) -> BuildRecord:
        return self._build(caller, function, zip_from_source(source))

    def _build(self, caller: Caller, function: FunctionRecord, archive: bytes) -> BuildRecord:
        if len(archive) > MAX_ZIP_BYTES:
            raise PayloadTooLarge(
                "archive too large", f"at most {MAX_ZIP_BYTES} bytes, got {len(archive)}"
            )
        counters = wiring.owner_metrics()
        counters.building(caller.user, 1)
        try:
            return self._build_counted(caller, function, archive)
        finally:
            counters.building(caller.user, -1)

    def _build_counted(self, caller: Caller, function: FunctionRecord,
                       archive: bytes) -> BuildRecord:
        started = now_ns()
        build_id = ids.new_id()
        report = check_zip(archive)
        log = list(report.log)
        status = BuildStatus.FAILED
        key = ""
        version = ""
        if report.ok:
            key = code_key(function.id, build_id)
            self.blobs.put(key, archive, "application/zip")
            deployed, version = self._deploy(function, archive, log)
            if deployed and self.functions.set_build(function.id, caller.user, build_id, key,
                                                     version):
                status = BuildStatus.SUCCESS
            elif deployed:
                log.append("the function was deleted during the build")
        record = BuildRecord(
            id=build_id,
            owner=caller.user,
            function_id=function.id,
            status=status,
            timeline=[_stamp(BuildStatus.PENDING, started), _stamp(status, now_ns())],
            log=log,
            code_key=key if status is BuildStatus.SUCCESS else "",
            lambda_version=version if status is BuildStatus.SUCCESS else "",
            created_at=started,
        )
        self.store.put(record)
        return record

    def _deploy(self, function: FunctionRecord, archive: bytes,
                log: list[str]) -> tuple[bool, str]:
        """(deployed, Lambda version): nothing to do in process isolation."""
        if self.lambdas is None:
            return True, ""
        try:
            version = self.lambdas.deploy(function, archive)
        except (ClientError, BotoCoreError, RuntimeError) as error:
            logger.exception("build of function %s: deploy failed", function.id)
            log.append(f"the function could not be deployed: {error}")
            return False, ""
        log.append(f"deployed as version {version} of {self.lambdas.name(function.id)}")
        return True, version

    def get(self, caller: Caller, build_id: str) -> BuildRecord:
        return owned(self.store.get, build_id, caller, "build")

    def list(self, caller: Caller, *, page: int, limit: int,
             function_id: str | None = None) -> BuildPage:
        """Page `page` (from 1) of the caller's builds, or of one function of theirs (404
        otherwise), newest first, with the total.

        The total is counted, not kept: the page's own Query already reads the index entries
        before it, the count reads the rest (keys only on GSI2; GSI1's few projected
        attributes), each entry once, about one Query a MB of entries. A counter would cost
        a second write with every build, kept in step with it (a transaction on each build
        route), for a list that is read far less often than builds are made; and builds are
        deploys, a few per function, so counting stays cheap. The page's depth is bounded
        (LIST_DEPTH_MAX)."""
        if page * limit > LIST_DEPTH_MAX:
            raise InvalidRequest(
                f"page × limit must be at most {LIST_DEPTH_MAX}",
                f"page {page} of {limit} lies {page * limit} builds deep, and a page reads "
                "every build before it; narrow the list to one function with functionId")
        if function_id is not None:
            owned(self.functions.get, function_id, caller, "function")
        builds, total = self.store.list_page(caller.user, page=page, limit=limit,
                                             function_id=function_id)
        return BuildPage(builds, total)
