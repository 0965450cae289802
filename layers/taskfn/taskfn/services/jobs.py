"""fastlane's jobs API over taskfn's tasks (docs/design/jobs-api.md): groups of jobs, and
each execution of a job as one attempt of a task record under the one lifecycle, so the
platform and Cell APIs see it too. Every read is keyed by the caller: another owner's group,
job or execution is not found, with no ownership check to forget."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from taskfn import aws, cron, ids, wiring
from taskfn.adapters.fastlane import JobPayload, words
from taskfn.errors import Conflict, InvalidRequest, NotFound
from taskfn.lifecycle import SECOND_NS, State
from taskfn.models import Caller, TaskRecord, expiry, now_ns
from taskfn.services.containers import ContainerRuns
from taskfn.settings import Settings, get_settings
from taskfn.stores.blobs import BlobStore
from taskfn.stores.jobs import (
    GROUP_ID_MAX,
    ExecutionPointer,
    GroupRecord,
    JobRecord,
    JobsStore,
    JobWrite,
    Refused,
    RunningContainer,
    valid_group_id,
)
from taskfn.stores.queue import TaskQueue
from taskfn.stores.schedules import (
    ScheduleRecord,
    SchedulerSchedules,
    ScheduleStore,
    job_schedule_item,
)
from taskfn.stores.tasks import TaskStore

logger = logging.getLogger(__name__)

CONTAINER = "container"  # the lang of a job's task records
EXECUTIONS_SHOWN = 20  # job details show the newest 20, as upstream
DETAILS_OUTPUT_MAX = 64 * 1024  # of each output, job and execution details show this much
OUTPUT_MAX = 4 * 1024 * 1024  # the output routes: what a Lambda answer carries, as text
RUNNING_SHOWN = 1000  # /status lists at most this many of the caller's running containers
# A job stop looks at this many newest executions for unfinished ones: a per-minute cron
# job with 8 retries makes 9 a minute; 10,000 cover a week of them.
STOP_READ_MAX = 10_000
WRITE_TRIES = 4  # an enqueue racing others on one group or job reads again, this often
ONE_SHOT_MIN_S = 10  # a startAt in the past (or a startIn under this) runs this much later


def expression_of(schedule: ScheduleRecord) -> str:
    """Scheduler's expression of a job's schedule: its cron, or at(...) of its one time."""
    if schedule.cron:
        return cron.to_eventbridge(schedule.cron)
    when = datetime.fromtimestamp(schedule.at, UTC)
    return f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})"


def fire_run_id(schedule_id: str, fire_time: str) -> str:
    """The run of one fire of a job's schedule: a UUIDv7 of the fire time whose random
    bits are a hash of (schedule, fire time), the same for every delivery of the fire."""
    try:
        when = datetime.fromisoformat(fire_time.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"bad scheduled time {fire_time[:40]!r}") from None
    digest = hashlib.sha256(f"{schedule_id}#{fire_time}".encode()).digest()
    return ids.new_uuid7(int(when.timestamp() * SECOND_NS),
                         digest[:10])


@dataclass(frozen=True)
class Enqueued:
    task_id: str
    job_id: str
    execution_id: str | None
    queue_job_id: str | None


@dataclass(frozen=True)
class Execution:
    """One execution as fastlane shows it: its pointer and what its attempt recorded.
    `state` is the task's when this is its current attempt, else Completed."""

    pointer: ExecutionPointer
    image: str
    command: str
    request_ip: str
    state: State
    container_status: str
    outcome: str
    exit_code: int | None
    started_at: int
    finished_at: int
    stdout: str
    stderr: str
    reason: str
    # The outputs whose text above is only their head (job details show at most
    # DETAILS_OUTPUT_MAX bytes of each; the output routes show it all).
    truncated: frozenset[str] = frozenset()

    @property
    def finished(self) -> bool:
        return self.state in (State.COMPLETED, State.RESOLVING)


def next_time(schedule: ScheduleRecord, now: datetime) -> datetime | None:
    """When the schedule fires next (UTC): its cron's next time, or its one time."""
    if schedule.cron:
        return cron.next_times(schedule.cron, now)[0]
    return datetime.fromtimestamp(schedule.at, UTC) if schedule.at else None


@dataclass(frozen=True)
class Status:
    counts: dict[str, int]
    scheduled: list[tuple[JobRecord, datetime | None]]
    queues: dict[str, int]
    executor: str
    running: list[RunningContainer] = field(default_factory=list)


class JobService:
    def __init__(self, jobs: JobsStore, tasks: TaskStore, blobs: BlobStore, queue: TaskQueue,
                 settings: Settings, schedules: ScheduleStore | None = None,
                 scheduler: SchedulerSchedules | None = None):
        self.jobs = jobs
        self.tasks = tasks
        self.blobs = blobs
        self.queue = queue
        self.settings = settings
        self._runs: ContainerRuns | None = None  # stops: built on first use
        self.schedules = schedules or ScheduleStore(jobs.table)
        self.scheduler = scheduler or SchedulerSchedules(
            aws.LazyClient("scheduler"), group=settings.schedule_group_name,
            target_arn=settings.schedule_target_arn, role_arn=settings.schedule_role_arn)

    @classmethod
    def from_env(cls) -> JobService:
        return cls(JobsStore(wiring.table()), wiring.tasks(), wiring.blobs(),
                   wiring.task_queue(), get_settings())

    # --- groups --------------------------------------------------------------------------

    def groups_page(self, caller: Caller, page: int, per_page: int
                    ) -> tuple[list[GroupRecord], int]:
        total = self.jobs.counts(caller.user)["groups"]
        if (page - 1) * per_page >= total and page > 1:
            return [], total
        return self.jobs.groups_page(caller.user, page=page, per_page=per_page), total

    def search(self, caller: Caller, query_words: frozenset[str], page: int, per_page: int
               ) -> tuple[list[GroupRecord], int]:
        found = self.jobs.search(caller.user, query_words)
        chosen = found[(page - 1) * per_page: page * per_page]
        return self.jobs.groups(caller.user, chosen) if chosen else [], len(found)

    def group(self, caller: Caller, task_id: str) -> list[tuple[str, int]]:
        """The group's jobs (id, created at), oldest first; NotFound for no such group."""
        if not valid_group_id(task_id) or self.jobs.group(caller.user, task_id) is None:
            raise NotFound("Task not found.")
        return self.jobs.jobs(caller.user, task_id)

    # --- enqueue ---------------------------------------------------------------------------

    def enqueue(self, caller: Caller, task_id: str, payload: JobPayload, *, request_ip: str,
                job_id: str | None = None, execution_id: str | None = None,
                links_base: str = "") -> Enqueued:
        """POST /tasks/<t> (a new job) or PUT /tasks/<t>/jobs/<j> (that job, created or
        updated): the group, the job and, unless the job is scheduled, its first execution
        in one transaction, then the execution's task to the queue. A race with another
        enqueue of the same group or job reads again and retries. `execution_id` names the
        run (a schedule's fire: its second delivery then makes none)."""
        if not valid_group_id(task_id):
            raise InvalidRequest(f"task id must be 1 to {GROUP_ID_MAX} characters, "
                                 "without '#', '/' or control characters.")
        named = job_id is not None  # a PUT's job may exist; a POST's new uuid4 cannot
        job_id = job_id or str(uuid.uuid4())
        for _ in range(WRITE_TRIES):
            now = now_ns()
            group = self.jobs.group(caller.user, task_id)
            existing = self.jobs.job(caller.user, task_id, job_id) if group and named else None
            if existing is not None and existing.schedule_id:
                self._unschedule(existing)  # a PUT replaces the job's pending schedule
                existing = existing.model_copy(update={"schedule_id": ""})
            schedule = self._schedule_of(caller, task_id, job_id, payload, now)
            run_id = None if schedule else (execution_id or ids.new_uuid7(now))
            job = self._job(caller, task_id, job_id, payload, request_ip, now, existing,
                            run_id, schedule.id if schedule else "", links_base)
            task = self._run(job, payload.envs, run_id, now) if run_id else None
            try:
                self.jobs.write(JobWrite(
                    group=group or GroupRecord(task_id=task_id, owner=caller.user,
                                               created_at=now, last_modified_at=now),
                    new_group=group is None, words=words(task_id), job=job,
                    new_job=existing is None,
                    pointer=self._pointer(job, run_id, run_id, 1, now) if run_id else None,
                    task_item=TaskStore.item_for(task) if task else None,
                    schedule_item=job_schedule_item(schedule) if schedule else None))
            except Refused:
                continue
            if schedule is not None:
                self._start_schedule(schedule)
                return Enqueued(task_id, job_id, None, schedule.id)
            self.queue.send_after_write(run_id)
            return Enqueued(task_id, job_id, run_id, run_id)
        raise Conflict("the task changed concurrently; try again")

    # --- schedules (startAt, startIn, cron) --------------------------------------------------

    def _schedule_of(self, caller: Caller, task_id: str, job_id: str, payload: JobPayload,
                     now: int) -> ScheduleRecord | None:
        """The job's schedule: its cron, or the one time its startAt or startIn says (a time
        already past runs a minute from now, as Scheduler cannot fire in the past)."""
        if not payload.scheduled:
            return None
        at = 0.0
        if not payload.cron:
            at = payload.start_at if payload.start_at is not None else \
                now / SECOND_NS + (payload.start_in_s or 0)
            at = max(at, now / SECOND_NS + ONE_SHOT_MIN_S)
        return ScheduleRecord(id=ids.new_id(), owner=caller.user, kind="job", task_id=task_id,
                              job_id=job_id, cron=payload.cron or "", at=at, timezone="UTC",
                              created_at=now)

    def _start_schedule(self, schedule: ScheduleRecord) -> None:
        """Scheduler's schedule of a record just written; refused, the record goes and the
        job stays unscheduled (500: the job exists, its schedule does not)."""
        try:
            self.scheduler.create(schedule, expression_of(schedule))
        except Exception:
            logger.exception("job schedule %s not created", schedule.id)
            self.schedules.delete_job_schedule(schedule.owner, schedule.id)
            self.jobs.unschedule(schedule.owner, schedule.task_id, schedule.job_id, schedule.id)
            raise

    def _unschedule(self, job: JobRecord) -> None:
        """Nothing fires for the job any more: Scheduler's schedule first, then its record."""
        self.scheduler.delete(job.schedule_id)
        self.schedules.delete_job_schedule(job.owner, job.schedule_id)
        self.jobs.unschedule(job.owner, job.task_id, job.job_id, job.schedule_id)

    def run_scheduled(self, schedule_id: str, owner: str, fire_time: str) -> str | None:
        """One fire of a job's schedule (RunScheduleFunction): a new run of the job, its id
        made of the fire time, so a second delivery of the fire makes none. A one-shot's
        schedule is gone once it has fired. None when there is nothing to run."""
        schedule = self.schedules.job_schedule(owner, schedule_id) if ids.is_id(
            schedule_id) else None
        if schedule is None:
            logger.warning("job schedule %r is gone: run at %s skipped", schedule_id[:64],
                           fire_time)
            return None
        job = self.jobs.job(owner, schedule.task_id, schedule.job_id)
        if job is None or job.schedule_id != schedule.id:
            logger.warning("job schedule %s has no job: removed", schedule_id)
            self.schedules.delete_job_schedule(owner, schedule_id)
            return None
        now = now_ns()
        run_id = fire_run_id(schedule_id, fire_time)
        task = self._run(job, json.loads(job.envs_json), run_id, now)
        added = self.jobs.add_execution(self._pointer(job, run_id, run_id, 1, now),
                                        TaskStore.item_for(task), scheduled=schedule.id)
        if added:
            self.queue.send_after_write(run_id)
        if schedule.at:  # a one-shot: done
            self.schedules.delete_job_schedule(owner, schedule_id)
            self.jobs.unschedule(owner, schedule.task_id, schedule.job_id, schedule_id)
        return run_id if added else None

    def _job(self, caller: Caller, task_id: str, job_id: str, payload: JobPayload,
             request_ip: str, now: int, existing: JobRecord | None,
             execution_id: str | None, schedule_id: str, links_base: str) -> JobRecord:
        return JobRecord(
            job_id=job_id, task_id=task_id, owner=caller.user,
            created_at=existing.created_at if existing else now, last_modified_at=now,
            image=payload.image, command=payload.command,
            envs_json=json.dumps(payload.envs), metadata_json=json.dumps(payload.metadata),
            webhooks_json=json.dumps({event: [hook.__dict__ for hook in hooks]
                                      for event, hooks in payload.webhooks.items()}),
            notify_json=json.dumps({event: list(addresses)
                                    for event, addresses in payload.notify.items()}),
            dns_json=json.dumps([list(entry) for entry in payload.additional_dns]),
            retries=payload.retries, timeout=payload.timeout,
            expiration=payload.expiration or 0, cron=payload.cron or "",
            schedule_id=schedule_id, request_ip=request_ip,
            links_base=links_base or (existing.links_base if existing else ""),
            execution_count=(existing.execution_count if existing else 0) + bool(execution_id),
            last_execution_id=execution_id or (existing.last_execution_id if existing else ""))

    def _run(self, job: JobRecord, envs: dict[str, str], execution_id: str, now: int, *,
             image: str = "", command: str = "") -> TaskRecord:
        """The task record of a job's run (its image and command, or those given): its first
        execution id is its guid."""
        return TaskRecord(
            task_guid=execution_id, owner=job.owner, lang=CONTAINER,
            created_at=now, updated_at=now,
            expires_at=expiry(now, self.settings.task_retention_days),
            retries=job.retries, timeout=job.timeout,
            job_task_id=job.task_id, job_id=job.job_id, image=image or job.image,
            command=command or job.command, envs=dict(envs) or None,
            expiration=job.expiration, request_ip=job.request_ip,
            execution_id=execution_id)

    @staticmethod
    def _pointer(job: JobRecord, execution_id: str, task_guid: str, attempt: int,
                 now: int) -> ExecutionPointer:
        return ExecutionPointer(execution_id=execution_id, task_guid=task_guid,
                                attempt=attempt, owner=job.owner, task_id=job.task_id,
                                job_id=job.job_id, created_at=now)

    # --- /status -------------------------------------------------------------------------

    def status(self, caller: Caller) -> Status:
        """The owner's counts and scheduled jobs with their next times, and the platform's
        queues (approximate lengths, as SQS counts them)."""
        now = datetime.now(UTC)
        schedules = self.schedules.job_schedules(caller.user)
        keyed = {(s.task_id, s.job_id): s for s in schedules}
        jobs = self.jobs.jobs_by_key(caller.user, sorted(keyed))
        scheduled = []
        for job in jobs:
            schedule = keyed[(job.task_id, job.job_id)]
            if job.schedule_id != schedule.id:
                continue  # a schedule its job no longer has (being removed)
            scheduled.append((job, next_time(schedule, now)))
        scheduled.sort(key=lambda pair: (pair[1] or now, pair[0].task_id, pair[0].job_id))
        return Status(counts=self.jobs.counts(caller.user), scheduled=scheduled,
                      queues={name: self._length(url) for name, url in (
                          ("jobs", self.settings.task_queue_url),
                          ("monitor", self.settings.container_watch_queue_url),
                          ("webhooks", self.settings.job_webhook_queue_url),
                          ("notify", self.settings.job_notify_queue_url))},
                      executor=self.runs().runtime.name if self.runs().runtime else "none",
                      running=self.jobs.running(caller.user, limit=RUNNING_SHOWN))

    def _length(self, url: str) -> int:
        if not url:
            return 0
        answer = self.queue.client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(answer.get(name, 0)) for name in (
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"))

    # --- stop and retry ----------------------------------------------------------------

    def runs(self) -> ContainerRuns:
        if self._runs is None:
            self._runs = ContainerRuns.from_env()
        return self._runs

    def stop_job(self, caller: Caller, task_id: str, job_id: str) -> JobRecord:
        """Every unfinished execution of the job stopped (a cron job's runs can overlap): a
        running one is told to stop and ends failed with fastlane's text, a waiting one
        (queued, or backing off before a retry) ends at once; no retry follows either way.
        The schedule goes first, so no new run starts behind the stops."""
        job = self.job(caller, task_id, job_id)
        if job.schedule_id:
            self._unschedule(job)
        guids = self.jobs.execution_tasks(caller.user, task_id, job_id, at_most=STOP_READ_MAX)
        for task in self.tasks.get_many(guids) if guids else []:
            if task.state in (State.PENDING, State.RUNNING):
                self.runs().stop(task, "user")
        return job

    def stop_execution(self, caller: Caller, task_id: str, job_id: str,
                       execution_id: str) -> JobRecord:
        """That execution stopped, if it is still its task's current attempt and unfinished."""
        job = self.job(caller, task_id, job_id, f"Task ({task_id}) or Job ({job_id}) not found.")
        pointer = self.jobs.execution(caller.user, task_id, job_id, execution_id) if \
            ids.is_uuid(execution_id) else None
        if pointer is None:
            raise NotFound(f"Job Execution ({execution_id}) not found in Job ({job_id}).")
        self._stop(pointer)
        return job

    def _stop(self, pointer: ExecutionPointer) -> None:
        task = self.tasks.get(pointer.task_guid, consistent=True)
        current = task is not None and (task.execution_id or task.task_guid) == \
            pointer.execution_id
        if current and task.state in (State.PENDING, State.RUNNING):
            self.runs().stop(task, "user")

    def retry_job(self, caller: Caller, task_id: str, job_id: str) -> JobRecord:
        """A new run of the job from its last execution's image and command, with the job's
        retries; a running last execution is stopped first. Refused for a job that never ran
        and for a scheduled one (its schedule runs it). The new run is listed only if the
        job's last execution is still the one retried, so two racing retries make one run."""
        for _ in range(WRITE_TRIES):
            started = now_ns()
            job = self.job(caller, task_id, job_id)
            if job.schedule_id:
                raise InvalidRequest("Can't retry a scheduled job.")
            last = self.jobs.executions(caller.user, task_id, job_id, limit=1)
            previous = self.tasks.get(last[0].task_guid, consistent=True) if last else None
            if previous is None:
                raise InvalidRequest("No execution yet to retry.")
            if previous.state in (State.PENDING, State.RUNNING):
                # whichever attempt it is on: a retry written, its next attempt not yet listed
                self.runs().stop(previous, "user")
            now = now_ns()
            run_id = ids.new_uuid7(now)
            task = self._run(job, previous.envs or {}, run_id, now, image=previous.image,
                             command=previous.command)
            if self.jobs.add_execution(self._pointer(job, run_id, run_id, 1, now),
                                       TaskStore.item_for(task),
                                       after=job.last_execution_id):
                self.queue.send_after_write(run_id)
                return job
            newest = self.jobs.executions(caller.user, task_id, job_id, limit=1)
            if newest and newest[0].attempt == 1 and newest[0].created_at >= started:
                return job  # a new run came meanwhile (another retry): that one is this one
            # else the job was removed (the next read says so) or its run moved to its
            # next attempt: retry that one
        raise Conflict("the job changed while it was retried; try again")

    # --- reads ---------------------------------------------------------------------------

    def job(self, caller: Caller, task_id: str, job_id: str,
            missing: str = "Job not found in task.") -> JobRecord:
        job = self.jobs.job(caller.user, task_id, job_id) if (
            valid_group_id(task_id) and ids.is_uuid(job_id)) else None
        if job is None:
            raise NotFound(missing)
        return job

    def job_details(self, caller: Caller, task_id: str, job_id: str
                    ) -> tuple[JobRecord, list[Execution]]:
        """The job and its 20 newest executions, newest first: one Query of the pointers
        and one BatchGetItem of their tasks."""
        job = self.job(caller, task_id, job_id)
        pointers = self.jobs.executions(caller.user, task_id, job_id, limit=EXECUTIONS_SHOWN)
        return job, self._executions(pointers, DETAILS_OUTPUT_MAX)

    def execution(self, caller: Caller, task_id: str, job_id: str, execution_id: str
                  ) -> tuple[JobRecord, Execution]:
        job = self.job(caller, task_id, job_id, f"Task ({task_id}) or Job ({job_id}) not found.")
        pointer = self.jobs.execution(caller.user, task_id, job_id, execution_id) if \
            ids.is_uuid(execution_id) else None
        found = self._executions([pointer], DETAILS_OUTPUT_MAX) if pointer else []
        if not found:
            raise NotFound(f"Job Execution ({execution_id}) not found in job ({job_id}).")
        return job, found[0]

    def output_of(self, caller: Caller, task_id: str, job_id: str,
                  execution_id: str | None) -> Execution:
        """The execution whose stdout, stderr or logs are asked for: the job's last, or the
        one named. 404 for an unknown job; 400 (as upstream) when there is none."""
        job = self.job(caller, task_id, job_id, f"Task ({task_id}) or Job ({job_id}) not found.")
        if not job.execution_count:
            raise InvalidRequest(f"No executions found in job ({job_id}).")
        if execution_id is None:
            pointers = self.jobs.executions(caller.user, task_id, job_id, limit=1)
        else:
            pointer = self.jobs.execution(caller.user, task_id, job_id, execution_id) if \
                ids.is_uuid(execution_id) else None
            pointers = [pointer] if pointer else []
        found = self._executions(pointers, OUTPUT_MAX)
        if not found:
            raise InvalidRequest("No executions found in job with specified arguments.")
        return found[0]

    def execution_for_hooks(self, owner: str, task_id: str, job_id: str, execution_id: str
                            ) -> tuple[JobRecord, ExecutionPointer, Execution] | None:
        """What a job's webhook or e-mail tells of one of its executions (its job, its
        pointer, the execution with outputs as the details show them); None once gone."""
        job = self.jobs.job(owner, task_id, job_id)
        pointer = self.jobs.execution(owner, task_id, job_id, execution_id) if job else None
        found = self._executions([pointer], DETAILS_OUTPUT_MAX) if pointer else []
        return (job, pointer, found[0]) if job and pointer and found else None

    def _executions(self, pointers: list[ExecutionPointer], limit: int) -> list[Execution]:
        guids = sorted({p.task_guid for p in pointers})
        tasks = {t.task_guid: t for t in self.tasks.get_many(guids)} if guids else {}
        found = []
        for pointer in pointers:
            task = tasks.get(pointer.task_guid)
            if task is None or task.expired(now_ns()):
                continue  # past its retention: the execution is gone with its task
            found.append(self._execution(pointer, task, limit))
        return found

    def _execution(self, pointer: ExecutionPointer, task: TaskRecord, limit: int) -> Execution:
        """The attempt `pointer` names: the task's own fields for its current attempt, its
        entry in `attempts` for an earlier one."""
        if pointer.attempt == len(task.attempts) + 1:
            source: dict[str, Any] = task.model_dump(include={
                "stdout", "stdout_key", "stderr", "stderr_key", "outcome", "exit_code",
                "started_at"})
            fields: dict[str, Any] = {
                "state": task.state, "container_status": task.container_status,
                "finished_at": task.first_completed_at,
                "reason": task.failure_reason if task.failed else ""}
        else:
            source = task.attempts[pointer.attempt - 1] if \
                0 < pointer.attempt <= len(task.attempts) else {}
            fields = {"state": State.COMPLETED, "container_status": "",
                      "finished_at": int(source.get("finished_at", 0)),
                      "reason": source.get("failure_reason", "")}
        truncated = set()
        for stream in ("stdout", "stderr"):
            text, cut = self._text(source.get(stream, ""), source.get(f"{stream}_key", ""),
                                   limit)
            fields[stream] = text
            if cut:
                truncated.add(stream)
        return Execution(pointer=pointer, image=task.image, command=task.command,
                         request_ip=task.request_ip,
                         outcome=source.get("outcome", "") or "",
                         exit_code=source.get("exit_code"),
                         started_at=int(source.get("started_at", 0)),
                         truncated=frozenset(truncated), **fields)

    def _text(self, inline: str, key: str, limit: int) -> tuple[str, bool]:
        """An output (inline, or its head from S3) and whether it was cut at `limit`."""
        if not key:
            return inline, False
        try:
            data, total = self.blobs.head(key, limit)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return "", False  # removed by the bucket's retention with its task
            raise
        return data.decode(errors="ignore"), total > len(data)
