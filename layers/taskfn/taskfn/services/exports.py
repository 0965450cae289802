"""The CSV export of a function's tasks: read them by date, have the API's adapter render
them, answer the file inline or through S3. Memory never grows with the number of rows.

Reading: a function's tasks are keys on GSI2 ("FUNC#<id>#TASK", sorted by creation time), so
the export Queries that partition between its two dates, oldest first, a page of keys at a
time, and reads the tasks themselves with BatchGetItem (100 keys a request, a few requests
in flight, only the attributes a row needs), in order. Bodies kept in S3 are fetched by a
small pool a few rows ahead of the row being rendered. Never a Scan.

Writing: the rendered bytes go into a buffer. An export that ends before the buffer holds
`inline_max_bytes` is answered as it is, without S3. Otherwise the buffer goes to a
multipart upload whenever it holds a part (`part_bytes`, at least S3's 5 MiB), the last part
when the rows end, and the answer is a presigned GET of the object. In memory at any moment:
one part, the batches in flight and the bodies fetched ahead.
"""

from __future__ import annotations

import base64
import calendar
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from botocore.exceptions import ClientError

from taskfn import ids, wiring
from taskfn.errors import PayloadTooLarge
from taskfn.lifecycle import SECOND_NS
from taskfn.models import DAY_S, Caller, TaskRecord, answer_of_unanswered, now_ns
from taskfn.services.ownership import owned
from taskfn.settings import Settings, get_settings
from taskfn.stores.blobs import BlobStore, export_key
from taskfn.stores.records import FunctionStore
from taskfn.stores.table import Table, time_key
from taskfn.stores.tasks import function_partition, readable

logger = logging.getLogger(__name__)

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
# A CSV at most this large is the answer itself (a Lambda answer carries 6 MB); a larger one
# is uploaded and answered with a 303 to a presigned GET valid URL_EXPIRES_S.
INLINE_MAX_BYTES = 1024 * 1024
PART_BYTES = 8 * 1024 * 1024  # S3 wants at least 5 MiB in every part but the last
S3_MIN_PART_BYTES = 5 * 1024 * 1024
URL_EXPIRES_S = 15 * 60
PAGE_KEYS = 1000  # keys per Query page of the index (keys only: about 130 KB)
BATCH_KEYS = 100  # BatchGetItem's limit
BATCH_READERS = 4  # BatchGetItem requests in flight
BODY_READERS = 4  # S3 GETs in flight
ROWS_AHEAD = 2 * BATCH_KEYS  # rows read past one whose body is still on its way
# Every attribute a row needs, and those a TaskRecord must have to be read at all.
READ_ATTRIBUTES = (
    "task_guid", "owner", "created_at", "updated_at", "state", "first_completed_at",
    "response_status", "response_headers", "response_body", "response_base64",
    "response_key", "failed", "failure_reason", "result", "schedule_id", "expires_at",
)
LAST_KEY_NS = 10**20 - 1  # the largest creation time time_key writes in its 20 digits
# Of the time a request has left, what completing the upload and signing its URL may take:
# reading stops this long before the end, with a clear answer rather than a timeout.
FINISH_MARGIN_S = 3.0


@dataclass(frozen=True)
class ExportFilter:
    """Which of a function's tasks: created on `since` to `until` (UTC days, both included;
    None: no bound), by the schedule `schedule_id` (None: any)."""

    since: date | None = None
    until: date | None = None
    schedule_id: str | None = None


@dataclass(frozen=True)
class ExportedResponse:
    """A finished task's response as GET /v1/task/{id}/result replays it."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class ExportRow:
    task_id: str
    created_at: int  # ns
    response: ExportedResponse | None  # None until the task has finished


@dataclass(frozen=True)
class Export:
    """The CSV itself (`body`), or where to fetch it (`location`, a presigned GET)."""

    rows: int
    size: int
    body: bytes | None = None
    location: str | None = None


# The adapter's rendering of the rows (header included) as the file's bytes, in pieces.
Render = Callable[[Iterable[ExportRow]], Iterable[bytes]]


def day_start_ns(day: date) -> int:
    return calendar.timegm(day.timetuple()) * SECOND_NS


def key_range(filters: ExportFilter, kept_from_ns: int) -> tuple[str, str] | None:
    """The GSI2 sort keys of tasks created within the filter's days and not before
    `kept_from_ns` (older ones are past their retention); None when no task can be."""
    low = kept_from_ns if filters.since is None else max(kept_from_ns,
                                                         day_start_ns(filters.since))
    high = LAST_KEY_NS
    if filters.until is not None and filters.until < date.max:
        high = min(high, day_start_ns(filters.until + timedelta(days=1)) - 1)
    if low > high:
        return None
    return time_key(low, ""), time_key(high, "~")  # ids sort before "~"


def content_type_of(headers: dict[str, str]) -> str:
    return next((value for name, value in headers.items() if name.lower() == "content-type"),
                "")


@dataclass
class _Count:
    rows: int = 0


@dataclass
class _Upload:
    key: str
    upload_id: str
    parts: list[dict[str, Any]] = field(default_factory=list)


def _in_context(pool: ThreadPoolExecutor, function: Callable[..., Any], *args: Any) -> Future:
    """Submit with the caller's context variables (the local stack signs each function's
    calls as its own role through one)."""
    return pool.submit(contextvars.copy_context().run, function, *args)


class ExportService:
    def __init__(
        self,
        table: Table,
        functions: FunctionStore,
        blobs: BlobStore,
        settings: Settings,
        *,
        inline_max_bytes: int = INLINE_MAX_BYTES,
        part_bytes: int = PART_BYTES,
        page_keys: int = PAGE_KEYS,
        batch_readers: int = BATCH_READERS,
        body_readers: int = BODY_READERS,
        now: Callable[[], int] = now_ns,
    ):
        if inline_max_bytes >= part_bytes:
            raise ValueError("an inline export must be known before its first part is due")
        self.table = table
        self.functions = functions
        self.blobs = blobs
        self.settings = settings
        self.inline_max_bytes = inline_max_bytes
        self.part_bytes = part_bytes  # below S3's minimum only against moto, in tests
        self.page_keys = page_keys
        self.batch_readers = batch_readers
        self.body_readers = body_readers
        self.now = now

    @classmethod
    def from_env(cls) -> ExportService:
        return cls(wiring.table(), wiring.functions(), wiring.blobs(), get_settings())

    def check_access(self, caller: Caller, function_id: str) -> None:
        """The caller's function, or not found: checked before the query is read, so that
        another owner's function is a 404 whatever the query says."""
        owned(self.functions.get, function_id, caller, "function")

    def export(self, caller: Caller, function_id: str, filters: ExportFilter,
               render: Render, *, remaining_s: float | None = None,
               checked: bool = False) -> Export:
        """The caller's function's tasks, rendered; another owner's function is not found
        (`checked`: check_access said so already). Given the time the request has left, an
        export that cannot end within it stops (its upload aborted) with a 413 that says to
        narrow the dates, not a timeout."""
        if not checked:
            self.check_access(caller, function_id)
        count = _Count()
        deadline = None if remaining_s is None else (
            time.monotonic() + remaining_s - FINISH_MARGIN_S)
        rows = self.rows(function_id, filters, count, deadline=deadline)
        try:
            return self._deliver(function_id, render(rows), count)
        finally:
            rows.close()  # its readers' pools, when the export stopped early

    # --- reading -----------------------------------------------------------------------

    def rows(self, function_id: str, filters: ExportFilter, count: _Count | None = None, *,
             deadline: float | None = None) -> Iterator[ExportRow]:
        """The function's tasks within the filter, oldest first, that are still kept and
        readable; a finished one with its response."""
        now = self.now()
        kept_ns = self.settings.task_retention_days * DAY_S * SECOND_NS
        between = key_range(filters, max(0, now - kept_ns))
        if between is None:
            return
        batches = ThreadPoolExecutor(self.batch_readers, thread_name_prefix="export-batch")
        bodies = ThreadPoolExecutor(self.body_readers, thread_name_prefix="export-body")
        try:
            records = self._records(function_id, between, filters.schedule_id, now, batches,
                                    deadline)
            for row in self._with_bodies(records, bodies):
                if count is not None:
                    count.rows += 1
                yield row
        finally:
            batches.shutdown(cancel_futures=True)
            bodies.shutdown(cancel_futures=True)

    def _key_chunks(self, function_id: str, between: tuple[str, str]) -> Iterator[
        list[tuple[str, str]]
    ]:
        """The tasks' table keys, a BatchGetItem's worth at a time, one Query per page."""
        cursor: str | None = None
        while True:
            page = self.table.query("GSI2", function_partition(function_id),
                                    limit=self.page_keys, cursor=cursor, newest_first=False,
                                    between=between)
            keys = [(item["PK"], item["SK"]) for item in page.items]
            for start in range(0, len(keys), BATCH_KEYS):
                yield keys[start : start + BATCH_KEYS]
            if page.cursor is None:
                return
            cursor = page.cursor

    def _records(self, function_id: str, between: tuple[str, str], schedule_id: str | None,
                 now: int, pool: ThreadPoolExecutor,
                 deadline: float | None = None) -> Iterator[TaskRecord]:
        """The tasks in key order, read by a few BatchGetItem requests in flight: twice as
        many batches are asked for as run, so the readers never wait for the writer."""
        window: deque[Future] = deque()
        for keys in self._key_chunks(function_id, between):
            window.append(_in_context(pool, self._read_batch, keys, schedule_id, now))
            if len(window) >= 2 * self.batch_readers:
                yield from self._in_time(window.popleft(), deadline)
        while window:
            yield from self._in_time(window.popleft(), deadline)

    @staticmethod
    def _in_time(batch: Future, deadline: float | None) -> list[TaskRecord]:
        """A batch's tasks, unless the export has run out of time (checked at every batch,
        so the rendering and uploading of the rows before count too)."""
        if deadline is not None and time.monotonic() > deadline:
            raise PayloadTooLarge(
                "too many tasks to export in one request",
                "narrow dateSince and dateUntil, and export the days in several requests")
        return batch.result()

    def _read_batch(self, keys: list[tuple[str, str]], schedule_id: str | None,
                    now: int) -> list[TaskRecord]:
        """One BatchGetItem: the tasks of these keys in their order, but those gone (deleted
        since the index was read), past their retention, unreadable or of another schedule."""
        order = {pk.removeprefix("TASK#"): position for position, (pk, _) in enumerate(keys)}
        items = self.table.get_many(keys, attributes=READ_ATTRIBUTES)
        items.sort(key=lambda item: order.get(str(item.get("task_guid")), len(order)))
        return [task for task in readable(TaskRecord, items)
                if not task.expired(now)
                and (schedule_id is None or task.schedule_id == schedule_id)]

    def _with_bodies(self, records: Iterable[TaskRecord],
                     pool: ThreadPoolExecutor) -> Iterator[ExportRow]:
        """Each task's row, in order. A body kept in S3 is asked for when its task is read,
        at most twice `body_readers` of them ahead of the row being rendered (and at most
        ROWS_AHEAD rows), so the pool works while earlier rows are written."""
        ahead: deque[tuple[TaskRecord, Future | None]] = deque()
        fetching = 0
        for task in records:
            body = None
            if task.finished and task.response_status and task.response_key:
                body = _in_context(pool, self._stored_body, task.response_key)
                fetching += 1
            ahead.append((task, body))
            while ahead and (ahead[0][1] is None or ahead[0][1].done()
                             or fetching > 2 * self.body_readers or len(ahead) > ROWS_AHEAD):
                head, future = ahead.popleft()
                fetching -= future is not None
                yield self._row(head, future)
        while ahead:
            yield self._row(*ahead.popleft())

    def _stored_body(self, key: str) -> bytes:
        """A body kept in S3; one its lifecycle rule removed already is an empty body."""
        try:
            return self.blobs.get(key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return b""
            raise

    @staticmethod
    def _row(task: TaskRecord, stored: Future | None) -> ExportRow:
        if not task.finished:
            return ExportRow(task.task_guid, task.created_at, None)
        if not task.response_status:  # no HTTP answer of its own: as /result has it
            response = ExportedResponse(*answer_of_unanswered(task.failed, task.failure_reason,
                                                              task.result))
            return ExportRow(task.task_guid, task.created_at, response)
        if stored is not None:
            body = stored.result()
        else:
            text = task.response_body or ""
            body = base64.b64decode(text) if task.response_base64 else text.encode()
        content_type = content_type_of(task.response_headers)
        return ExportRow(task.task_guid, task.created_at,
                         ExportedResponse(task.response_status, content_type, body))

    # --- writing -----------------------------------------------------------------------

    def _deliver(self, function_id: str, chunks: Iterable[bytes], count: _Count) -> Export:
        """The rendered bytes inline when they stay small, else uploaded a part at a time;
        an upload that fails on the way is aborted, parts and all."""
        buffer = bytearray()
        upload: _Upload | None = None
        size = 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= self.part_bytes:
                    upload = upload or self._begin(function_id)
                    self._send(upload, buffer)
                    buffer = bytearray()
            if upload is None and len(buffer) <= self.inline_max_bytes:
                logger.info("export of %s: %d rows, %d bytes inline", function_id,
                            count.rows, size)
                return Export(count.rows, size, body=bytes(buffer))
            upload = upload or self._begin(function_id)
            if buffer:
                self._send(upload, buffer)
            self.blobs.complete_upload(upload.key, upload.upload_id, upload.parts)
        except BaseException:
            if upload is not None:
                self._abort(upload)
            raise
        logger.info("export of %s: %d rows, %d bytes in %d parts to %s", function_id,
                    count.rows, size, len(upload.parts), upload.key)
        url = self.blobs.download_url(upload.key, CSV_CONTENT_TYPE, URL_EXPIRES_S,
                                      filename=f"{function_id}.csv")
        return Export(count.rows, size, location=url)

    def _begin(self, function_id: str) -> _Upload:
        key = export_key(function_id, ids.new_id())
        return _Upload(key, self.blobs.create_upload(key, CSV_CONTENT_TYPE))

    def _send(self, upload: _Upload, buffer: bytearray) -> None:
        upload.parts.append(self.blobs.upload_part(upload.key, upload.upload_id,
                                                   len(upload.parts) + 1, bytes(buffer)))

    def _abort(self, upload: _Upload) -> None:
        try:
            self.blobs.abort_upload(upload.key, upload.upload_id)
        except Exception:
            # The Bucket's abort-incomplete-uploads rule removes the parts within a day.
            logger.warning("export upload %s not aborted", upload.key, exc_info=True)
