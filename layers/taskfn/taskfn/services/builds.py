"""Builds: check an uploaded zip, keep it in S3, deploy it (isolation "lambda": as a new
version of the function's own Lambda), point the function at it.

The check is quick (no code runs) and a deploy takes seconds, so a build finishes inside its
request; PENDING is only the first entry of its timeline.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from taskfn import ids, wiring
from taskfn.errors import PayloadTooLarge
from taskfn.models import BuildRecord, BuildStatus, Caller, FunctionRecord, now_ns
from taskfn.runtime.packaging import MAX_ZIP_BYTES, check_zip, zip_from_source
from taskfn.services.ownership import owned
from taskfn.stores.blobs import BlobStore, code_key
from taskfn.stores.lambdas import FunctionLambdas
from taskfn.stores.records import BuildStore, FunctionStore

logger = logging.getLogger(__name__)


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
        function = owned(self.functions.get, function_id, caller, "function")
        return self._build(caller, function, archive)

    def create_from_source(
        self, caller: Caller, function: FunctionRecord, source: str
    ) -> BuildRecord:
        return self._build(caller, function, zip_from_source(source))

    def _build(self, caller: Caller, function: FunctionRecord, archive: bytes) -> BuildRecord:
        if len(archive) > MAX_ZIP_BYTES:
            raise PayloadTooLarge(
                "archive too large", f"at most {MAX_ZIP_BYTES} bytes, got {len(archive)}"
            )
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
