"""fastlane's webhooks and notify (reference/fastlane.md; docs/design/jobs-api.md §5): when an
execution ends, the hooks its job has for that ending are queued, then delivered from their
queue, each with its own retries.

What queues them is the table's stream (JobReactionsFunction), as for completion callbacks: an
attempt of a job's task ending (the task entering Completed, or going back to Pending for its
next attempt after a non-zero exit), whoever wrote it. No writer sends anything beside its
write; a batch that cannot be queued comes again whole, so a hook is sent at least once.

Which hooks an ending fires is upstream's rule: done → succeeds and finishes; failed → fails
and finishes; timed out → finishes; expired, or stopped by the user → none.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from taskfn import aws, outbound, wiring
from taskfn.adapters.fastlane import Links, execution_view
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import CONTAINER_CELL, TaskRecord
from taskfn.settings import Settings, get_settings
from taskfn.stores.jobs import ExecutionPointer, JobRecord, JobsStore, RunningContainer
from taskfn.stores.table import from_item

logger = logging.getLogger(__name__)

BACKOFF_UNIT_S = 5  # a failed webhook is sent again after 2^n × 5 s (upstream's defaults)
WEBHOOK_DEADLINE_S = 5.0  # the whole POST's
DISPATCHES_KEPT = 3  # of an execution's webhook answers, the last three are shown
DISPATCH_BODY_KEPT = 1024
DISPATCH_ERROR_KEPT = 512
HEADERS_KEPT, HEADER_KEPT = 20, 256  # of an answer's headers: so many, so long
NOTIFY_TRIES = 3  # SES throttling: tried again with the same back-off, this often
RUNNING_KEPT_S = 3600  # a running-set entry outlives its run's timeout by this, at most
MAX_DELAY_S = 900  # SQS's longest delay: a longer back-off is waited in hops
# Headers of the user's that the platform sets itself (or that would break the request).
OWN_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})

FIRES = {"succeeded": ("succeeds", "finishes"), "timedout": ("finishes",),
         "expired": (), "stopped": ()}
FAILED_FIRES = ("fails", "finishes")


@dataclass(frozen=True)
class Ended:
    """One attempt of a job's task that a stream batch shows ending."""

    guid: str
    owner: str
    task_id: str
    job_id: str
    execution_id: str
    outcome: str


def fires(outcome: str) -> tuple[str, ...]:
    """The hook lists an execution's ending fires; any other ending is a failure."""
    return FIRES.get(outcome, FAILED_FIRES)


def _task(image: Mapping[str, Any] | None) -> TaskRecord | None:
    item = from_item(image or {})
    if item.get("SK") != "TASK" or item.get("lang") != "container":
        return None
    return TaskRecord.model_validate(item)


# A stream record of a job's task: (its new image, its old image), either None when absent.
Change = tuple[TaskRecord | None, TaskRecord | None]


def job_changes(records: list[Mapping[str, Any]]) -> list[Change]:
    """The job tasks' changes a stream batch holds, in order, each image parsed once."""
    changes = []
    for record in records:
        change = record.get("dynamodb") or {}
        new, old = _task(change.get("NewImage")), _task(change.get("OldImage"))
        if new is not None or old is not None:
            changes.append((new, old))
    return changes


def ended_attempts(changes: list[Change]) -> list[Ended]:
    """The attempts a stream batch shows ending, in order, each once: a job's task entering
    Completed (its current attempt ended), or its retry count growing (the attempt that
    failed is the last entry of `attempts`)."""
    found: list[Ended] = []
    for new, old in changes:
        if new is None or old is None:
            continue
        if new.state is State.COMPLETED and old.state is not State.COMPLETED:
            execution_id, outcome = new.execution_id or new.task_guid, new.outcome or "failed"
        elif new.retried > old.retried and new.attempts:
            last = new.attempts[-1]
            execution_id, outcome = str(last.get("execution_id", "")), "failed"
        else:
            continue
        ended = Ended(new.task_guid, new.owner, new.job_task_id, new.job_id, execution_id,
                      outcome)
        if execution_id and ended not in found:
            found.append(ended)
    return found


def orphaned_containers(changes: list[Change]) -> list[str]:
    """Containers of job tasks that someone ended while they ran (a Cell API cancel, a
    deletion by retention): the task entered Completed, or was removed, with its container
    never reported STOPPED. Their task ARNs."""
    refs: list[str] = []
    for new, old in changes:
        gone = new is None and old is not None and old.state is State.RUNNING
        ended = new is not None and new.state is State.COMPLETED and (
            old is None or old.state is not State.COMPLETED)
        task = new if new is not None else old
        if task is not None and (gone or ended) and task.container_ref and \
                task.container_status != "STOPPED" and task.container_ref not in refs:
            refs.append(task.container_ref)
    return refs


def _container_runs(task: TaskRecord | None) -> bool:
    return task is not None and task.state is State.RUNNING and \
        task.cell_id.startswith(CONTAINER_CELL) and bool(task.container_ref)


def running_changes(changes: list[Change]) -> list[tuple[bool, TaskRecord]]:
    """The running set's changes a stream batch shows, in order: (True, task) when a job's
    container was launched, (False, task) when that run ended (completed, retried, removed)."""
    found: list[tuple[bool, TaskRecord]] = []
    for new, old in changes:
        same = new is not None and old is not None and new.cell_id == old.cell_id
        if old is not None and _container_runs(old) and not (_container_runs(new) and same):
            found.append((False, old))
        if new is not None and _container_runs(new) and not (_container_runs(old) and same):
            found.append((True, new))
    return found


def hook_messages(ended: Ended, job: JobRecord) -> list[dict[str, Any]]:
    """The messages one ending queues: a webhook message per URL and a notify message per
    address, of every list the ending fires."""
    webhooks, notify = json.loads(job.webhooks_json), json.loads(job.notify_json)
    about = {"guid": ended.guid, "owner": ended.owner, "taskId": ended.task_id,
             "jobId": ended.job_id, "executionId": ended.execution_id}
    messages: list[dict[str, Any]] = []
    for event in fires(ended.outcome):
        for hook in webhooks.get(event, []):
            messages.append({**about, "kind": "webhook", "event": event, "url": hook["url"],
                             "headers": hook.get("headers") or {},
                             "retries": int(hook.get("retries") or 0), "retryCount": 0})
        for address in notify.get(event, []):
            messages.append({**about, "kind": "notify", "event": event, "email": address,
                             "retryCount": 0})
    return messages


def backoff_s(retry_count: int) -> int:
    """Upstream's back-off before retry n+1: 2^n × 5 s."""
    return int(math.pow(2, retry_count) * BACKOFF_UNIT_S)


def webhook_payload(execution_dict: dict[str, Any], job: JobRecord) -> bytes:
    """Upstream's body: the execution (with its log and error), its metadata without the
    dispatch history and with the job's own metadata as `custom`, and the job id."""
    data = json.loads(json.dumps(execution_dict))
    metadata = dict(data.get("metadata") or {})
    metadata.pop("webhookDispatch", None)
    metadata["custom"] = json.loads(job.metadata_json)
    data["metadata"] = metadata
    data["job_id"] = job.job_id
    return json.dumps(data).encode()


def dispatch_record(url: str, status: int, body: str, headers: Mapping[str, str],
                    error: str = "", now: Callable[[], float] = time.time) -> dict[str, Any]:
    """What an execution keeps of one webhook answer (shown in its metadata)."""
    kept_headers = {str(k)[:HEADER_KEPT]: str(v)[:HEADER_KEPT]
                    for k, v in list(headers.items())[:HEADERS_KEPT]}
    record = {"timestamp": datetime.fromtimestamp(now(), UTC).replace(tzinfo=None).isoformat(),
              "url": url, "statusCode": status, "body": body[:DISPATCH_BODY_KEPT],
              "headers": kept_headers}
    if error:
        record["error"] = error[:DISPATCH_ERROR_KEPT]
    return record


def request_headers(user_headers: Mapping[str, Any]) -> dict[str, str]:
    """The user's headers, without those the platform sets (outbound.post adds JSON's
    content type unless the user gave one)."""
    return {str(k): str(v) for k, v in user_headers.items()
            if str(k).lower() not in OWN_HEADERS}


def subject(ended_event: str, task_id: str, job_id: str, exit_code: int | None) -> str:
    """Upstream's subjects; an exit code it does not have is "none" (upstream's %d raises)."""
    code = "none" if exit_code is None else str(exit_code)
    if ended_event == "succeeds":
        return f"[Fastlane] Job {task_id}/{job_id} succeeded!"
    if ended_event == "fails":
        return f"[Fastlane] Job {task_id}/{job_id} failed with exit code {code}!"
    return f"[Fastlane] Job {task_id}/{job_id} finished with exit code {code}!"


def email_bodies(execution_dict: dict[str, Any], links: Links, task_id: str,
                 job_id: str) -> tuple[str, str]:
    """(text, HTML) of a notification: the execution as JSON and the task and job links;
    everything in the HTML escaped (the output is the job's, and the job is anyone's)."""
    from html import escape

    data = json.dumps(execution_dict, indent=4, sort_keys=True)
    text = f"\nAutomatic message. Please do not reply to this!\n\nJob Details:\n{data}\n"
    html = (f"<html><body>\n<h2>Job Details:</h2>\n<div><pre><code>{escape(data)}</code></pre>"
            f"</div>\n<div>---</div>\n<p><a href=\"{escape(links.task(task_id))}\">"
            f"[View Task Details]</a> | <a href=\"{escape(links.job(task_id, job_id))}\">"
            "[View Job Details]</a></p>\n<div>---</div>\n"
            "<p>Automatic message. Please do not reply to this!</p>\n</body></html>\n")
    return text, html


# (url, body, address, deadline in s, headers) → the answer; OSError when none came.
Poster = Callable[..., outbound.Response]
THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                       "LimitExceededException"})


class JobHooks:
    """Both halves: queueing what endings fire (the stream's reaction) and delivering it
    (the hooks queues' handler)."""

    def __init__(self, jobs: JobsStore, executions: Any, sqs: Any, ses: Any,
                 settings: Settings, *, runtime: Any = None, post: Poster = outbound.post,
                 resolver: outbound.Resolver = outbound.resolve,
                 now: Callable[[], float] = time.time):
        self.jobs = jobs
        self.executions = executions  # JobService: an execution as fastlane shows it
        self.sqs = sqs
        self.ses = ses
        self.settings = settings
        self.runtime = runtime
        self.post = post
        self.resolver = resolver
        self.now = now

    @classmethod
    def from_env(cls) -> JobHooks:
        from taskfn.services.containers import runtime_of
        from taskfn.services.jobs import JobService

        settings = get_settings()
        return cls(JobsStore(wiring.table()), JobService.from_env(), aws.LazyClient("sqs"),
                   aws.LazyClient("sesv2"), settings, runtime=runtime_of(settings))

    # --- the stream's reaction -----------------------------------------------------------

    def react(self, records: list[Mapping[str, Any]]) -> dict[str, int]:
        """Queue the hooks of the endings a stream batch shows, keep the running set, and
        stop the containers of job tasks that others ended. Raises when SQS refuses a
        message, so the batch comes again (a hook queued twice is posted twice: at least
        once, as upstream)."""
        changes = job_changes(records)
        messages: list[dict[str, Any]] = []
        for ended in ended_attempts(changes):
            job = self.jobs.job(ended.owner, ended.task_id, ended.job_id)
            if job is not None:
                messages += hook_messages(ended, job)
        for message in messages:
            self._send(message, 0)
        for started, task in running_changes(changes):
            if started:
                self.jobs.running_started(RunningContainer(
                    owner=task.owner, execution_id=task.execution_id or task.task_guid,
                    task_id=task.job_task_id, job_id=task.job_id,
                    container_ref=task.container_ref,
                    expires_at=task.started_at // SECOND_NS + task.timeout + RUNNING_KEPT_S))
            else:
                self.jobs.running_ended(task.owner, task.execution_id or task.task_guid)
        stopped = 0
        for ref in orphaned_containers(changes):
            if self.runtime is not None:
                self.runtime.stop(ref, "taskfn: the task ended while its container ran")
                stopped += 1
        return {"hooks": len(messages), "stopped": stopped}

    def _send(self, message: dict[str, Any], delay_s: int) -> None:
        url = self.settings.job_webhook_queue_url if message["kind"] == "webhook" else \
            self.settings.job_notify_queue_url
        if not url:
            logger.warning("no %s queue: a %s hook of execution %s dropped", message["kind"],
                           message["event"], message["executionId"])
            return
        hop = min(MAX_DELAY_S, max(0, delay_s))  # a longer wait: sent on when it comes
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message),
                              **({"DelaySeconds": hop} if hop else {}))

    def _later(self, message: dict[str, Any], wait_s: int) -> None:
        """The message again after `wait_s` (past SQS's longest delay: in hops, each hop
        resent until it is due)."""
        self._send({**message, "due": self.now() + wait_s}, wait_s)

    # --- delivery ------------------------------------------------------------------------

    def deliver(self, body: str) -> str:
        """One message of a hooks queue; what happened, for the log. Raises only for a
        failure of the platform's own (SQS then delivers it again)."""
        try:
            message = json.loads(body)
            kind = message["kind"]
            str(message["owner"]), str(message["executionId"])
        except (ValueError, TypeError, KeyError):
            logger.warning("hooks: a message that is not one: %r", body[:80])
            return "ignored"  # only the platform writes here: never retried
        left = float(message.get("due") or 0) - self.now()
        if left > 1:
            self._send(message, math.ceil(left))
            return "waiting"
        found = self.executions.execution_for_hooks(
            str(message["owner"]), str(message["taskId"]), str(message["jobId"]),
            str(message["executionId"]))
        if found is None:
            return "gone"  # the job or its execution was removed meanwhile
        if kind == "webhook":
            return self._webhook(message, *found)
        if kind == "notify":
            return self._notify(message, *found)
        return "ignored"

    def _webhook(self, message: dict[str, Any], job: JobRecord, pointer: ExecutionPointer,
                 execution: Any) -> str:
        url, links = str(message["url"]), Links(job.links_base)
        hooked = json.loads(job.webhooks_json).get(str(message.get("event")), [])
        if not any(hook.get("url") == url for hook in hooked):
            return "withdrawn"  # a PUT removed it meanwhile: its retries stop with it
        payload = webhook_payload(execution_view(execution, links), job)
        try:
            address = outbound.check_url(url, allow_private=self.settings.allow_private_callbacks,
                                         resolver=self.resolver)
        except outbound.RefusedURL as refused:
            self._record(pointer, dispatch_record(url, 0, "", {}, f"refused: {refused}",
                                                  self.now))
            return "refused"  # never allowed: not retried
        if not self._spend(str(message["owner"]), "webhook", self.settings.job_webhooks_per_hour):
            self._record(pointer, dispatch_record(
                url, 0, "", {}, "refused: this account's jobs sent their "
                f"{self.settings.job_webhooks_per_hour} webhooks of the hour", self.now))
            return "over_budget"  # not retried: the next hour's budget is for new endings
        try:
            answer = self.post(url, payload, address=address, deadline_s=WEBHOOK_DEADLINE_S,
                               headers=request_headers(message.get("headers") or {}),
                               max_body_bytes=DISPATCH_BODY_KEPT)
        except OSError as error:
            ok, record = False, dispatch_record(url, 500, "", {},
                                                f"{type(error).__name__}: {error}", self.now)
        else:
            ok = answer.status < 400
            record = dispatch_record(
                url, answer.status, answer.body.decode("utf-8", errors="replace"),
                dict(answer.headers), "" if ok else f"the answer was {answer.status}",
                self.now)
        self._record(pointer, record)
        if ok:
            return "delivered"
        retry_count = int(message.get("retryCount") or 0)
        if retry_count < int(message.get("retries") or 0):
            self._later({**message, "retryCount": retry_count + 1}, backoff_s(retry_count))
            return "retrying"
        return "gave_up"

    def _spend(self, owner: str, kind: str, per_hour: int) -> bool:
        """One of the owner's sends of this hour, if any are left (a retry is a send too)."""
        hour = int(self.now() // 3600)
        return self.jobs.spend(owner, kind, hour, per_hour, expires_at=(hour + 2) * 3600)

    def _record(self, pointer: ExecutionPointer, record: dict[str, Any]) -> None:
        try:
            self.jobs.record_dispatch(pointer, record, keep=DISPATCHES_KEPT)
        except Exception:  # the answer is history only: the delivery stands
            logger.exception("execution %s: a webhook answer not recorded",
                             pointer.execution_id)

    def _notify(self, message: dict[str, Any], job: JobRecord, pointer: ExecutionPointer,
                execution: Any) -> str:
        sender = self.settings.notify_from
        if not sender:
            logger.warning("notify of execution %s to %s dropped: no NotifyFrom address",
                           pointer.execution_id, message.get("email"))
            return "dropped"  # upstream without SMTP settings does the same
        if not self._spend(str(message["owner"]), "email", self.settings.job_emails_per_hour):
            logger.warning("notify of execution %s to %s dropped: the account's %d e-mails "
                           "of the hour are sent", pointer.execution_id, message.get("email"),
                           self.settings.job_emails_per_hour)
            return "over_budget"
        links = Links(job.links_base)
        text, html = email_bodies(execution_view(execution, links), links, job.task_id,
                                  job.job_id)
        title = subject(str(message["event"]), job.task_id, job.job_id, execution.exit_code)
        try:
            self.ses.send_email(
                FromEmailAddress=sender, Destination={"ToAddresses": [str(message["email"])]},
                Content={"Simple": {"Subject": {"Data": title, "Charset": "UTF-8"},
                                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                             "Html": {"Data": html, "Charset": "UTF-8"}}}})
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            retry_count = int(message.get("retryCount") or 0)
            if code in THROTTLED and retry_count + 1 < NOTIFY_TRIES:
                self._later({**message, "retryCount": retry_count + 1},
                            backoff_s(retry_count))
                return "retrying"
            logger.warning("notify of execution %s to %s refused: %s", pointer.execution_id,
                           message.get("email"), code)
            return "refused"
        return "sent"
