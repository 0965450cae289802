"""Settings from the environment, read once per process (the Lambda init phase)."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Settings(BaseModel):
    """Every knob of the platform; the names are the environment variables upper-cased."""

    table_name: str = "taskfn"
    bucket_name: str = "taskfn"
    task_queue_url: str = ""
    # Completion callbacks (reference/bbs.md): a queue of task guids for the callback Lambda;
    # each POST waits at most callback_timeout_s. Callback URLs that resolve to private,
    # loopback or link-local addresses are refused (SSRF) unless allowed: only the local stack
    # and tests, whose callback servers listen on 127.0.0.1, allow them.
    callback_queue_url: str = ""
    callback_timeout_s: float = Field(5, gt=0, le=30)
    allow_private_callbacks: bool = False
    # HTTP functions (lang "http"): the executor POSTs each task's event to the function's
    # URL, with the same address checks as callbacks; private, loopback and link-local
    # addresses only where allowed (the local stack allows loopback for its tests' servers).
    allow_private_http_functions: bool = False
    # Whether this platform's built-in executor runs functions whose capabilities say
    # privileged (GreenCloud's capability). Off by default: an operator turns it on where
    # privileged work is allowed; elsewhere such tasks fail with a clear reason.
    allow_privileged: bool = False
    # Payloads above these sizes live in S3 with a pointer in the record (DynamoDB items stop
    # at 400 KB; keeping records small keeps reads and writes at one capacity unit or few).
    inline_input_bytes: int = 32 * 1024
    inline_result_bytes: int = 32 * 1024
    inline_log_bytes: int = 4 * 1024
    max_task_body_bytes: int = 1024 * 1024
    max_source_bytes: int = 256 * 1024
    # How long a task's record and its outputs in S3 are kept, in days: records get their
    # expires_at (the table's TTL) from it. template.yaml's TaskRetentionDays gives the Bucket's
    # lifecycle rule and every function (TASK_RETENTION_DAYS) the same number; a test checks
    # this default against that parameter's.
    task_retention_days: int = Field(30, ge=1)
    list_page_default: int = 100
    list_page_max: int = 1000
    # Where the executor unpacks code; /tmp is the only writable place in Lambda. The cache
    # keeps at most code_cache_max_bytes on disk (least recently used builds no run is using
    # go first): half of Lambda's default 512 MB /tmp, the rest is the runs' own. The same
    # default as runtime.codecache.DEFAULT_MAX_BYTES (the runtime imports nothing of this).
    code_cache_dir: str = "/tmp/taskfn-code"
    code_cache_max_bytes: int = Field(256 * 1024 * 1024, gt=0)
    # Where user code runs (template parameter Isolation). "lambda": each function's builds
    # are deployed as a Lambda function of its own (name prefix + function id) whose role
    # grants nothing, and the executor invokes it; "process": in the executor's sandboxes
    # (single-tenant deployments, and the local stack, where moto runs no Lambdas).
    isolation: Literal["lambda", "process"] = "process"
    function_name_prefix: str = "taskfn-fn-"
    function_role_arn: str = ""
    function_layer_arns: str = ""  # comma-separated: the taskfn layer, for the bootstrap
    stack_name: str = ""
    # A function's Lambda gets its task timeout plus this, to report a timeout itself.
    function_timeout_margin_s: int = Field(10, ge=1, le=60)
    # The executor leaves this much of the Lambda's time unused as a safety margin.
    executor_margin_s: int = 15
    default_timeout_s: int = Field(10, ge=10, le=120)
    # Cell API (reference/bbs.md): rejections a task survives before it fails (BBS's
    # max_task_retries), and the most tasks one list.r3 answer holds (BBS has no paging).
    max_task_retries: int = Field(3, ge=0)
    cell_list_max: int = Field(1000, ge=1)
    # Convergence (reference/bbs.md): a task Pending this long fails; a Pending task without
    # placement tags is sent to the queue again once it has waited the dispatch grace (so a
    # task just created is not sent twice); a running cell heartbeats every interval and a
    # Running task not updated for the cell timeout fails. One pass reads at most
    # converger_max_tasks open tasks, oldest first across every shard of the open index.
    pending_expiry_s: float = Field(1800, gt=0)
    dispatch_grace_s: float = Field(30, ge=0)
    cell_heartbeat_s: float = Field(30, gt=0)
    cell_timeout_s: float = Field(90, gt=0)
    converger_max_tasks: int = Field(10_000, ge=1)
    # The converger's schedule (template.yaml's rate): a task waiting in the queue is sent
    # again only when its wait crosses grace·2^k during the last period.
    converger_period_s: float = Field(60, gt=0)
    # Convergence of tasks with a callback or desired through the Cell API: Resolving this
    # long without an update goes back to Completed, Completed this long gets its callback (if
    # any) sent again (BBS's kick duration), and Completed this long after first completion is
    # deleted (BBS's completed expiry). GreenCloud's tasks are never deleted by convergence.
    kick_duration_s: float = Field(30, gt=0)
    completed_expiry_s: float = Field(120, gt=0)
    # Task events: published on this EventBridge bus (none: kept for readers only) and kept
    # for replay this long. A reader sees an event once it is settle seconds old (writers from
    # several stream shards may commit out of order by that much), waits at most wait seconds
    # for the first one, checking every poll seconds, and gets about page_max at a time.
    event_bus_name: str = ""
    # How often the bus's rules are read again (stores/bus.py): events no rule takes are not
    # published; a new rule takes events at most this long after it is created.
    event_rules_refresh_s: float = Field(60, ge=0)
    events_retention_s: int = Field(24 * 3600, ge=60)
    events_settle_s: float = Field(2, ge=0.5, le=10)
    events_wait_s: float = Field(20, ge=0, le=25)
    events_poll_s: float = Field(1, gt=0)
    events_page_max: int = Field(1000, ge=1, le=5000)
    # Public endpoints (GET /gc/{taskId}/result): how long after a task a public call created
    # has finished its result is readable without a token; after that, with the owner's.
    public_result_seconds: int = Field(300, ge=0)
    # Schedules (services/schedules.py): taskfn's EventBridge Scheduler group, and the target
    # every schedule invokes (RunScheduleFunction) with the role Scheduler assumes for it.
    schedule_group_name: str = "taskfn"
    schedule_target_arn: str = ""
    schedule_role_arn: str = ""
    # Triggers (services/triggers.py): how many chained tasks may follow one another; a task
    # this deep fires no trigger (the trigger records the stopped chain), so A → A ends.
    trigger_max_depth: int = Field(10, ge=1)
    # …and how many tasks one chain may create in all (from its first task): the depth
    # bounds a chain's length, this its breadth (three triggers A → A would otherwise make
    # 3 + 9 + … + 3^10 tasks of one).
    trigger_chain_max_tasks: int = Field(100, ge=1)
    # fastlane's jobs (services/containers.py): where their containers run. "ecs": ECS
    # Fargate on jobs_cluster_arn (none: jobs fail, "container runtime not configured");
    # "process": the local stack's sandboxed child processes. Their output goes to
    # job_log_group; container_watch_queue_url gets each run's timeout watch.
    container_runtime: Literal["ecs", "process"] = "ecs"
    jobs_cluster_arn: str = ""
    job_log_group: str = ""
    job_subnets: str = ""  # comma-separated
    job_security_groups: str = ""  # comma-separated
    job_assign_public_ip: bool = False
    job_execution_role_arn: str = ""
    container_watch_queue_url: str = ""
    # …their webhooks and e-mails (services/hooks.py): the queues they are delivered from,
    # and the SES identity the e-mails are sent from (none: they are logged and dropped).
    job_webhook_queue_url: str = ""
    job_notify_queue_url: str = ""
    notify_from: str = ""
    # …and what one owner's jobs may send in an hour, whatever their retries and hook lists:
    # past it a webhook is recorded as refused and an e-mail dropped (nobody verified the
    # addresses a job names, so the platform must not become anyone's amplifier).
    job_webhooks_per_hour: int = Field(600, ge=0)
    job_emails_per_hour: int = Field(60, ge=0)
    # Live logs (services/livelogs.py): the WebSocket API clients connect to (ws_url, what
    # the stream page and the /ws redirect name), its @connections API the pump posts to,
    # and the pump's queue. The local stack points both URLs at local/websocket.py.
    ws_url: str = ""
    ws_management_url: str = ""
    log_pump_queue_url: str = ""

    @model_validator(mode="after")
    def _timeout_exceeds_heartbeat(self) -> Settings:
        """A timeout at or below the heartbeat would fail healthy tasks between beats."""
        if self.cell_timeout_s <= self.cell_heartbeat_s:
            raise ValueError("cell_timeout_s must exceed cell_heartbeat_s")
        return self


@cache
def get_settings() -> Settings:
    """The process's settings, from the environment."""
    fields = Settings.model_fields
    values = {name: os.environ[name.upper()] for name in fields if name.upper() in os.environ}
    return Settings(**values)
