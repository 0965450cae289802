"""fastlane's live logs over a WebSocket (reference/fastlane.md, docs/design/jobs-api.md §6).

$connect authenticates (a token, or a stream page's ticket), resolves the execution to
follow and records the connection; then LogPumpQueue gets it. One pump per execution holds a
lease and does the rest, for every connection of that execution:

- unknown job: close 1000; no execution: close 1000 "wsretry"
- enqueued or pulling: close 1010 "wsretry" (the page tries again)
- finished: "EXIT CODE: n\\n", stdout, "\\n-=-\\n", stderr (the stored outputs), close 1010
  "wsdone"
- running: the log stream copied into chunks (a dense sequence, written with the head in one
  conditional transaction) and each connection sent the chunks from where it stands, so a
  late subscriber first gets what was already written. Once the run has finished and two
  reads found nothing more: close 1000 "wsdone".

API Gateway closes a connection with 1000 and no reason, whatever DeleteConnection is told,
so the code and reason also go in band first, as "\\0close <code> <reason>", to a client that
asked for the subprotocol taskfn.close.v1 (the stream page does); the local server honours
X-Taskfn-Close and closes with them.

Nothing is dropped: a connection's sent_seq moves only after its posts went out. A repeat
can only come from a pump dying between a post and that write (the documented limit)."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskfn import aws, ids, wiring
from taskfn.adapters.fastlane import error_text
from taskfn.errors import InvalidRequest, NotFound
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller, Scope, TaskRecord, now_ns
from taskfn.runtime.containers import log_stream
from taskfn.services.tokens import TokenService
from taskfn.settings import Settings, get_settings
from taskfn.stores.jobs import JobsStore, valid_group_id
from taskfn.stores.livelogs import Connection, Head, LeaseLost, LiveLogStore, Ticket
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

CLOSE_PROTOCOL = "taskfn.close.v1"
CLOSE_PREFIX = "\u0000close "
CLOSE_HEADER = "X-Taskfn-Close"
DONE, RETRY = "wsdone", "wsretry"
OK, NOT_FOUND = 1000, 1010  # fastlane's close codes
TICKET_S = 600  # a stream page's ticket is good for 10 minutes
CONNECTION_S = 2 * 3600  # API Gateway keeps a connection at most 2 hours
LEASE_MS = 30_000
LOOP_S = 0.5
HANDOVER_MS = 60_000  # the pump hands on this long before its Lambda's timeout
MESSAGE_BYTES = 32 * 1024  # a WebSocket message (API Gateway's frame size)
CHUNK_BYTES = 32 * 1024  # consecutive log events are stored together up to this
YOUNG_NS = 10 * SECOND_NS  # a connection this young may not be open yet (410 until it is)
BOUNCES_MAX = 600  # a message waiting for a busy pump is sent again at most this often
CACHE_BYTES = 8 * 1024 * 1024  # chunks the pump keeps in memory for its connections
FETCH_CHUNKS = 128  # a late subscriber's catch-up is read this many chunks (4 MB) a page
ID_MAX = 256  # query values longer than this are refused (400)
_PULLING = frozenset({"", "PROVISIONING", "PENDING", "ACTIVATING"})


@dataclass(frozen=True)
class Close:
    code: int
    reason: str = ""


def phase_of(task: TaskRecord | None, execution_id: str) -> str:
    """Where an execution stands for its followers: "pending" (enqueued), "pulling" (its
    container not running yet), "running", or "finished" (ended, an earlier attempt of a
    task that retried, or gone with its task)."""
    if task is None or (task.execution_id or task.task_guid) != execution_id:
        return "finished"
    if task.state is State.PENDING:
        return "pending"
    if task.state is State.RUNNING:
        return "pulling" if task.container_status in _PULLING else "running"
    return "finished"


def first_close(phase: str) -> Close | None:
    """What a new follower of an execution in `phase` gets at once: a close for one that has
    not started (the page tries again), None for a running or finished one."""
    return Close(NOT_FOUND, RETRY) if phase in ("pending", "pulling") else None


def split_text(text: str, limit: int = MESSAGE_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut between characters."""
    pieces: list[str] = []
    data = text.encode()
    start = 0
    while start < len(data):
        end = min(len(data), start + limit)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # not inside a character
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def pack(texts: list[str], limit: int) -> list[str]:
    """Consecutive `texts` joined into pieces of at most `limit` bytes where they fit (a text
    longer than that is a piece of its own)."""
    packed: list[str] = []
    current: list[str] = []
    size = 0
    for text in texts:
        length = len(text.encode())
        if current and size + length > limit:
            packed.append("".join(current))
            current, size = [], 0
        current.append(text)
        size += length
    if current:
        packed.append("".join(current))
    return packed


def record_text(message: str) -> str:
    """A log event's text: the local back-end's {"source", "log"} record, or the awslogs
    driver's plain line(s)."""
    try:
        record = json.loads(message)
    except ValueError:
        return message
    if isinstance(record, dict) and set(record) == {"source", "log"} and isinstance(
            record["log"], str) and record["source"] in ("stdout", "stderr"):
        try:
            record["log"].encode()
        except UnicodeEncodeError:  # a lone surrogate, escaped in JSON: no text can hold it
            return message
        return record["log"]
    return message


def _header(headers: Any, name: str) -> str:
    if not isinstance(headers, dict):
        return ""
    for key, value in headers.items():
        if key.lower() == name.lower() and isinstance(value, str):
            return value
    return ""


def _answer(status: int, message: str = "", headers: dict[str, str] | None = None) -> dict:
    answer: dict[str, Any] = {"statusCode": status}
    if message:
        answer["body"] = json.dumps({"message": message})
    if headers:
        answer["headers"] = headers
    return answer


class ManagementApi:
    """API Gateway's @connections API: post a message, close a connection. A connection
    that is gone (410) is reported as False, never raised."""

    def __init__(self, client: Any):
        self.client = client
        self._close_with = threading.local()
        client.meta.events.register(
            "before-sign.apigatewaymanagementapi.DeleteConnection", self._add_close_header)

    def _add_close_header(self, request: Any, **_: Any) -> None:
        value = getattr(self._close_with, "value", "")
        if value:
            request.headers[CLOSE_HEADER] = value

    def post(self, connection_id: str, text: str) -> bool:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=text.encode())
        except self.client.exceptions.GoneException:
            return False
        return True

    def close(self, connection_id: str, code: int, reason: str) -> bool:
        self._close_with.value = f"{code} {reason}".strip()
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except self.client.exceptions.GoneException:
            return False
        finally:
            self._close_with.value = ""
        return True


class _Cache:
    """Chunks the pump wrote or read, by seq, within CACHE_BYTES (the oldest go first)."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        self.size = 0

    def put(self, seq: int, text: str) -> None:
        if seq in self.texts:
            return
        self.texts[seq] = text
        self.size += len(text)
        while self.size > CACHE_BYTES and self.texts:
            oldest = min(self.texts)
            self.size -= len(self.texts.pop(oldest))


class LiveLogs:
    def __init__(self, store: LiveLogStore, jobs: JobsStore, tasks: TaskStore, *,
                 settings: Settings, queue: Any = None, logs: Any = None,
                 connections: ManagementApi | None = None, tokens: TokenService | None = None,
                 outputs: Any = None, sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.jobs = jobs
        self.tasks = tasks
        self.settings = settings
        self.queue = queue
        self.logs = logs
        self._connections = connections
        self.tokens = tokens
        self._outputs = outputs  # the finished outputs' reader: services.jobs.JobService
        self.sleep = sleep

    @classmethod
    def from_env(cls) -> LiveLogs:
        settings = get_settings()
        return cls(LiveLogStore(wiring.table()), JobsStore(wiring.table()), wiring.tasks(),
                   settings=settings, queue=aws.LazyClient("sqs"), logs=aws.LazyClient("logs"),
                   tokens=TokenService.from_env())

    @property
    def connections(self) -> ManagementApi:
        if self._connections is None:
            self._connections = ManagementApi(aws.client_at(
                "apigatewaymanagementapi", self.settings.ws_management_url))
        return self._connections

    @property
    def outputs(self) -> Any:
        if self._outputs is None:
            from taskfn.services.jobs import JobService

            self._outputs = JobService.from_env()
        return self._outputs

    # --- the stream page and the /ws redirect ---------------------------------------------

    def check_followable(self, caller: Caller, task_id: str, job_id: str,
                         execution_id: str = "") -> None:
        """The job (and execution) exist and are the caller's; NotFound in the texts of job
        and execution details otherwise. Two reads by key."""
        job = self.jobs.job(caller.user, task_id, job_id) if (
            valid_group_id(task_id) and ids.is_uuid(job_id)) else None
        if job is None:
            raise NotFound(f"Task ({task_id}) or Job ({job_id}) not found." if execution_id
                           else "Job not found in task.")
        if execution_id and (not ids.is_uuid(execution_id) or self.jobs.execution(
                caller.user, task_id, job_id, execution_id) is None):
            raise NotFound(f"Job Execution ({execution_id}) not found in job ({job_id}).")

    # --- the stream page's ticket ------------------------------------------------------

    def issue_ticket(self, caller: Caller, task_id: str, job_id: str,
                     execution_id: str = "") -> str:
        """A secret the page's WebSocket connects with (a browser sends no Authorization
        header there): this job's or execution's output only, for TICKET_S."""
        ticket = secrets.token_urlsafe(32)
        self.store.put_ticket(ticket, Ticket(owner=caller.user, task_id=task_id, job_id=job_id,
                                             execution_id=execution_id,
                                             expires_at=int(time.time()) + TICKET_S))
        return ticket

    def admit(self, caller: Caller, task_id: str, job_id: str, execution_id: str = "") -> str:
        """The ticket to follow the caller's job (its last execution) or one execution: the
        stream page's and the redirect's one step. NotFound when it is not theirs."""
        self.check_followable(caller, task_id, job_id, execution_id)
        return self.issue_ticket(caller, task_id, job_id, execution_id)

    # --- $connect / $disconnect ----------------------------------------------------------

    def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        """$connect: who, and which execution; the connection recorded and handed to the
        pump. A refusal is the handshake's status (401, 403, 400); an unknown job is
        accepted, to be closed 1000 as upstream does."""
        context = event.get("requestContext") or {}
        connection_id = context.get("connectionId")
        if not isinstance(connection_id, str) or not connection_id or len(connection_id) > 128:
            return _answer(400, "no connection id")
        query = event.get("queryStringParameters") or {}
        if not isinstance(query, dict) or any(
                not isinstance(v, str) or len(v) > ID_MAX for v in query.values()):
            return _answer(400, "query values must be at most 256 characters")
        wanted = (query.get("task", ""), query.get("job", ""), query.get("execution", ""))
        if query.get("ticket"):
            ticket = self.store.ticket(query["ticket"])
            if ticket is None or ticket.expires_at <= time.time():
                return _answer(401, "unknown or expired ticket")
            bound = (ticket.task_id, ticket.job_id, ticket.execution_id)
            if any(wanted) and wanted != bound:
                return _answer(403, "the ticket is for another job or execution")
            owner, wanted = ticket.owner, bound
        else:
            caller = self.tokens.authenticate(_header(event.get("headers"), "authorization")) \
                if self.tokens else None
            if caller is None:
                return _answer(401, "Authentication required.")
            if caller.scope not in (Scope.USER, Scope.ADMIN):
                return _answer(403, f"a {caller.scope.value} token cannot follow jobs")
            owner = caller.user
        task_id, job_id, execution_id = wanted
        if not task_id or not job_id:
            return _answer(400, "task and job are required")
        offered = [p.strip() for p in _header(event.get("headers"),
                                              "sec-websocket-protocol").split(",")]
        protocol = CLOSE_PROTOCOL if CLOSE_PROTOCOL in offered else ""
        connection, close = self._follow(owner, task_id, job_id, execution_id)
        now = now_ns()
        connection = Connection(connection_id=connection_id, owner=owner, task_id=task_id,
                                job_id=job_id, protocol=protocol, created_at=now,
                                expires_at=now // SECOND_NS + CONNECTION_S,
                                **connection)
        self.store.add_connection(connection)
        message: dict[str, Any] = {"connectionId": connection_id, "protocol": protocol,
                                   "createdAt": now}
        if close is not None:
            message["close"] = [close.code, close.reason]
        else:
            message |= self._target(connection)
        self._send(message)
        return _answer(200, headers={"Sec-WebSocket-Protocol": protocol} if protocol else None)

    def _follow(self, owner: str, task_id: str, job_id: str,
                execution_id: str) -> tuple[dict[str, str], Close | None]:
        """The execution a connection follows (the job's last, or the one named), or how it
        is closed: another owner's job is not there, as an unknown one."""
        job = self.jobs.job(owner, task_id, job_id) if (
            valid_group_id(task_id) and ids.is_uuid(job_id)) else None
        if job is None:
            return {}, Close(OK)
        if execution_id:
            pointer = self.jobs.execution(owner, task_id, job_id, execution_id) if \
                ids.is_uuid(execution_id) else None
        else:
            last = self.jobs.executions(owner, task_id, job_id, limit=1)
            pointer = last[0] if last else None
        if pointer is None:
            return {}, Close(OK, RETRY)
        return {"execution_id": pointer.execution_id, "task_guid": pointer.task_guid}, None

    def disconnect(self, connection_id: str) -> bool:
        """$disconnect: the connection's records gone (the pump stops sending to it)."""
        connection = self.store.connection_by_id(connection_id) if connection_id else None
        if connection is None:
            return False
        self.store.remove_connection(connection_id, connection.execution_id)
        return True

    # --- the pump --------------------------------------------------------------------------

    @staticmethod
    def _target(connection: Connection) -> dict[str, str]:
        return {"executionId": connection.execution_id, "taskGuid": connection.task_guid,
                "owner": connection.owner, "taskId": connection.task_id,
                "jobId": connection.job_id}

    def _send(self, message: dict[str, Any], delay_s: int = 0) -> None:
        self.queue.send_message(QueueUrl=self.settings.log_pump_queue_url,
                                MessageBody=json.dumps(message), DelaySeconds=delay_s)

    def pump(self, body: str, remaining_ms: Callable[[], int]) -> str:
        """One LogPumpQueue message: a connection to close, or an execution to pump (a new
        connection's, or a handover). Returns what happened, for the log."""
        try:
            message = json.loads(body)
            if "close" in message:
                code, reason = message["close"]
                int(code), str(reason), str(message["connectionId"])
                return self._close_only(message)
            execution_id = str(message["executionId"])
            if not all(isinstance(message.get(key), str) for key in ("taskGuid", "owner")):
                raise TypeError("no task guid or owner")
        except (ValueError, TypeError, KeyError):
            logger.warning("log pump: a message that is not one: %r", body[:80])
            return "ignored"  # only the platform writes here: never retried
        lease = uuid.uuid4().hex
        now_ms = int(time.time() * 1000)
        expires = now_ms // 1000 + self.settings.task_retention_days * 86_400
        if not self.store.take_lease(execution_id, lease, now_ms, LEASE_MS, expires):
            return self._busy(message)
        try:
            outcome = self._session(message, lease, remaining_ms)
        except LeaseLost:
            return "lease lost"
        except Exception:
            # Whatever broke this pump (a fault of the platform's own) must not leave its
            # followers waiting for hours with the lease taken: they are closed 1011.
            logger.exception("log pump of %s failed: its followers closed", execution_id)
            for connection in self.store.listeners(execution_id):
                self._close_and_forget(connection, Close(1011, "internal error"))
            self.store.release_lease(execution_id, lease)
            return "failed"
        if outcome == "handover":
            return outcome
        self.store.release_lease(execution_id, lease)
        # A connection that came after the last look gets a pump of its own.
        if any(not c.mode for c in self.store.listeners(execution_id)):
            self._send({key: message[key] for key in (
                "executionId", "taskGuid", "owner", "taskId", "jobId") if key in message})
        return outcome

    def _busy(self, message: dict[str, Any]) -> str:
        """Another pump holds the execution's lease: it serves every connection it sees. A
        connection it has not taken up yet waits a second and asks again (the holder may
        be about to end)."""
        connection_id = message.get("connectionId")
        if not connection_id:
            return "served"
        connection = self.store.listener(str(message["executionId"]), str(connection_id))
        if connection is None:
            return "gone"
        if connection.mode:
            return "served"
        bounces = int(message.get("bounces", 0))
        if bounces >= BOUNCES_MAX:
            logger.warning("log pump: connection %s never taken up", connection_id)
            return "given up"
        self._send({**message, "bounces": bounces + 1}, delay_s=1)
        return "waiting"

    def _close_only(self, message: dict[str, Any]) -> str:
        """A connection with nothing to follow: closed as soon as it is open. One not open
        yet (410) is asked again a second later, through the queue: a pump never waits for
        it (a tenant dropping handshakes must not hold the pumps others need)."""
        connection_id, (code, reason) = str(message["connectionId"]), message["close"]
        probe = Connection(connection_id=connection_id, owner="",
                           protocol=str(message.get("protocol", "")),
                           created_at=int(message.get("createdAt", 0)) or now_ns(),
                           expires_at=0)
        if not self._close(probe, Close(int(code), str(reason))) and \
                now_ns() - probe.created_at <= YOUNG_NS:
            self._send(message, delay_s=1)
            return "waiting to close"
        self.store.remove_connection(connection_id, "")
        return f"closed {code} {reason}".strip()

    def _session(self, target: dict[str, Any], lease: str,
                 remaining_ms: Callable[[], int]) -> str:
        """The pump's loop while it holds the lease: copy, send, close, until no connection
        is left (or the Lambda's time nearly is: then a handover)."""
        execution_id, guid = str(target["executionId"]), str(target["taskGuid"])
        head = self.store.head(execution_id)
        cache = _Cache()
        quiet = 0
        stream = ""  # the run's log stream, kept once seen: a retry moves the task on
        while True:
            if remaining_ms() < HANDOVER_MS:
                self.store.release_lease(execution_id, lease)
                self._send({key: target[key] for key in (
                    "executionId", "taskGuid", "owner", "taskId", "jobId")})
                return "handover"
            task = self.tasks.get(guid, consistent=True)
            phase = phase_of(task, execution_id)
            copied = full = False
            if phase in ("running", "finished") and task is not None and task.container_ref \
                    and (task.execution_id or task.task_guid) == execution_id:
                stream = log_stream(task.container_ref)
            if stream:  # read to its end, even once a retry made another attempt current
                head, copied, full = self._copy(execution_id, lease, head, cache, stream)
            quiet = 0 if copied or phase != "finished" else quiet + 1
            drained = phase == "finished" and quiet >= 2
            listeners = self.store.listeners(execution_id)
            if not listeners:
                return "idle"
            for connection in listeners:
                self._serve(connection, phase, head, cache, drained, target, lease)
            self.store.renew_lease(execution_id, lease, int(time.time() * 1000) + LEASE_MS)
            if not full:
                self.sleep(LOOP_S)

    def _serve(self, connection: Connection, phase: str, head: Head, cache: _Cache,
               drained: bool, target: dict[str, Any], lease: str = "") -> None:
        if not connection.mode:
            close = first_close(phase)
            if close is not None:
                self._close_and_forget(connection, close)
                return
            if phase == "finished":
                # Claimed first (conditional): a second pump never sends the outputs again.
                if self.store.mark(connection, sent_seq=0, mode="finished"):
                    self._finished(connection, target, lease)
                return
            if not self.store.mark(connection, sent_seq=0, mode="stream"):
                return  # gone meanwhile
            connection = connection.model_copy(update={"mode": "stream", "sent_seq": 0})
        if connection.mode == "finished":
            return  # its outputs are on their way (or it is closed): a pump died meanwhile
        connection = self._send_chunks(connection, head, cache, lease)
        if connection is not None and drained and connection.sent_seq >= head.next_seq:
            self._close_and_forget(connection, Close(OK, DONE))

    def _copy(self, execution_id: str, lease: str, head: Head, cache: _Cache,
              stream: str) -> tuple[Head, bool, bool]:
        """New log events into chunks: (the head after, whether any came, whether the page
        was full, so more may be waiting)."""
        arguments: dict[str, Any] = {"logGroupName": self.settings.job_log_group,
                                     "logStreamName": stream, "startFromHead": True}
        if head.token:
            arguments["nextToken"] = head.token
        try:
            page = self.logs.get_log_events(**arguments)
        except self.logs.exceptions.ResourceNotFoundException:
            return head, False, False  # the stream is not there yet
        events = page.get("events") or []
        token = page.get("nextForwardToken") or head.token
        if not events:
            # The end of a stream is a page that gives its token back; an empty page with a
            # new token is not (GetLogEvents may answer so with more to come): kept, and
            # counted as movement, so the stream is not taken as drained.
            if token == head.token:
                return head, False, False
            expires = int(time.time()) + self.settings.task_retention_days * 86_400
            return self.store.append(execution_id, lease, head, [], token, expires), True, True
        texts = pack([record_text(str(e.get("message", ""))) + "\n" for e in events],
                     CHUNK_BYTES)
        expires = int(time.time()) + self.settings.task_retention_days * 86_400
        first = head.next_seq
        head = self.store.append(execution_id, lease, head, texts, token, expires)
        for n, text in enumerate(texts):
            cache.put(first + n, text)
        # GetLogEvents answers at most 10,000 events or 1 MB: near that, more may wait.
        full = len(events) >= 5000 or sum(len(t) for t in texts) > 512 * 1024
        return head, True, full

    def _send_chunks(self, connection: Connection, head: Head, cache: _Cache,
                     lease: str = "") -> Connection | None:
        """The chunks the connection has not had, in order, in messages of at most 32 KB;
        its sent_seq moved after each message that completes chunks. None when it is gone.
        What the cache no longer holds (a late subscriber) is read page by page, beside it;
        the lease is renewed as the posts go (a second pump must not send them again)."""
        if connection.sent_seq >= head.next_seq:
            return connection
        fetched: dict[int, str] = {}

        def text_of(n: int) -> str | None:
            found = cache.texts.get(n)
            return found if found is not None else fetched.get(n)

        seq = connection.sent_seq
        while seq < head.next_seq:
            if text_of(seq) is None:
                fetched = dict(self.store.chunks(connection.execution_id, seq,
                                                 min(head.next_seq, seq + FETCH_CHUNKS)))
            texts, end, size = [], seq, 0
            while end < head.next_seq and text_of(end) is not None and (
                    not texts or size + len(str(text_of(end)).encode()) <= MESSAGE_BYTES):
                texts.append(str(text_of(end)))
                size += len(texts[-1].encode())
                end += 1
            if not texts:
                logger.warning("log pump: chunk %d of %s missing", seq, connection.execution_id)
                return connection
            self._keep_lease(connection.execution_id, lease)
            for piece in split_text("".join(texts)):
                if not self.connections.post(connection.connection_id, piece):
                    return self._gone(connection)
            if not self.store.mark(connection, sent_seq=end, mode="stream"):
                return None
            connection = connection.model_copy(update={"sent_seq": end})
            seq = end
        return connection

    def _keep_lease(self, execution_id: str, lease: str) -> None:
        """The lease renewed before more posts: LeaseLost if another pump has it now."""
        if lease:
            self.store.renew_lease(execution_id, lease, int(time.time() * 1000) + LEASE_MS)

    def _gone(self, connection: Connection) -> Connection | None:
        """A 410: a young connection may not be open yet (kept, tried again next round);
        an older one has left."""
        if now_ns() - connection.created_at < YOUNG_NS:
            return None
        self.store.remove_connection(connection.connection_id, connection.execution_id)
        return None

    def _finished(self, connection: Connection, target: dict[str, Any],
                  lease: str = "") -> None:
        """A finished execution's outputs, framed as upstream, then 1010 "wsdone"; one whose
        outputs are gone (past retention): 1010 "wsretry"."""
        try:
            execution = self.outputs.output_of(
                Caller(user=connection.owner, scope=Scope.USER), str(target["taskId"]),
                str(target["jobId"]), connection.execution_id)
        except (NotFound, InvalidRequest):
            self._close_and_forget(connection, Close(NOT_FOUND, RETRY))
            return
        parts = [f"EXIT CODE: {execution.exit_code}\n", execution.stdout, "\n-=-\n",
                 error_text(execution)]
        pieces = (piece for part in parts for piece in split_text(part))
        for n, piece in enumerate(pieces):
            if n % 32 == 0:
                self._keep_lease(connection.execution_id, lease)
            if self.connections.post(connection.connection_id, piece):
                continue
            if n == 0 and now_ns() - connection.created_at < YOUNG_NS:
                # not open yet: unclaimed again, for the next round
                self.store.mark(connection, sent_seq=0, mode="")
            else:
                self.store.remove_connection(connection.connection_id,
                                             connection.execution_id)
            return
        self._close_and_forget(connection, Close(NOT_FOUND, DONE))

    def _close(self, connection: Connection, close: Close) -> bool:
        """The close said in band (to a client of taskfn.close.v1), then the connection
        closed; False when it is not open (yet)."""
        if connection.protocol == CLOSE_PROTOCOL and not self.connections.post(
                connection.connection_id, f"{CLOSE_PREFIX}{close.code} {close.reason}".strip()):
            return False
        return self.connections.close(connection.connection_id, close.code, close.reason)

    def _close_and_forget(self, connection: Connection, close: Close) -> None:
        if self._close(connection, close) or now_ns() - connection.created_at >= YOUNG_NS:
            self.store.remove_connection(connection.connection_id, connection.execution_id)
