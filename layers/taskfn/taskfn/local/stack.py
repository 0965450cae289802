"""LocalStack: moto, the template's resources, the gateway and the pollers, in one process.

Handlers find moto only through AWS_ENDPOINT_URL, so the stack sets the process environment
(and restores it on stop).

With `data_dir`, the data outlives the stack: moto's state is snapshotted there
(local/persistence.py), with the streams' read positions (local/checkpoints.py), the jobs'
runs in flight (local/runs.py) and the admin token (local/admintoken.py); provisioning finds
what is already there and keeps it. Without it, everything is in memory and gone at stop.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Self

import boto3

from taskfn import aws, wiring
from taskfn.local import profiling
from taskfn.local.admintoken import issue_admin_token
from taskfn.local.checkpoints import StreamCheckpoints
from taskfn.local.containers import ProcessRuntime
from taskfn.local.datadir import prepare
from taskfn.local.environment import apply, pointed_at
from taskfn.local.eventrules import EventRules
from taskfn.local.gateway import Gateway
from taskfn.local.identities import FunctionCredentials, Identities, create_identities
from taskfn.local.invoke import Invoker
from taskfn.local.motoserver import SNAPSHOT_S, MotoProcess
from taskfn.local.persistence import Snapshot
from taskfn.local.pollers import Pollers
from taskfn.local.provision import (
    ACCOUNT_ID,
    REGION,
    Provisioned,
    function_environment,
    provision,
)
from taskfn.local.runs import RunLedger
from taskfn.local.scheduler import LocalScheduler
from taskfn.local.schedules import Schedules
from taskfn.local.template import Template, load_template
from taskfn.local.websocket import LocalWebSocketApi
from taskfn.runtime import containers

# How long a stop waits for the jobs it stops to tell their end (a SIGTERM'd command exits 143,
# as in ECS, and is retried or failed by the job's rules), before moto stops.
STOP_RUNS_S = 15.0


class LocalStack:
    """The whole platform on one machine; a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3000,
        admin_token: str | None = None,
        template_path: Path | str | None = None,
        workers: int = 4,
        *,
        prefix: str = "taskfn-local",
        access_log: bool = True,
        data_dir: Path | str | None = None,
        snapshot_s: float = SNAPSHOT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.admin_token = admin_token
        self.admin_token_generated = False
        self.admin_token_kept: Path | None = None  # its file, with a data directory
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.snapshot_s = snapshot_s  # a killed stack loses at most about this much
        self.template_path = Path(template_path) if template_path else None
        self.workers = workers
        self.prefix = prefix
        self.access_log = access_log
        self.template: Template | None = None
        self.provisioned: Provisioned | None = None
        self.invoker: Invoker | None = None
        self.gateway: Gateway | None = None
        self.pollers: Pollers | None = None
        self.schedules: Schedules | None = None
        self.scheduler: LocalScheduler | None = None  # GreenCloud schedules (EventBridge's)
        self.event_rules: EventRules | None = None
        self.containers: ProcessRuntime | None = None  # fastlane jobs' runs
        self.websocket: LocalWebSocketApi | None = None  # fastlane's live logs
        self.moto_endpoint: str | None = None
        self.identities: Identities | None = None
        self._moto: MotoProcess | None = None
        self._profile: profiling.Writer | None = None  # with TASKFN_LOCAL_PROFILE set
        self._saved_environ: dict[str, str | None] = {}

    @property
    def url(self) -> str:
        """The gateway's base URL (with the real port when started with port 0)."""
        if self.gateway is None:
            return f"http://{self.host}:{self.port}"
        return f"http://{self.host}:{self.gateway.port}"

    def start(self) -> Self:
        """Start moto, provision, serve routes and queues, and create the admin token."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.template = load_template(self.template_path)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
        # moto in a process of its own: an empty account every time (or the kept one), and its
        # CPU off this process's interpreter lock, which the gateway and the executors need.
        if self.data_dir is not None:
            prepare(self.data_dir)
        self._moto = MotoProcess(self.data_dir, self.snapshot_s)
        self.moto_endpoint = self._moto.endpoint
        if os.environ.get(profiling.ENV):  # where the time goes: local/profiling.py
            profiling.enable()
            self._profile = profiling.Writer(os.environ[profiling.ENV], self._moto.stats)
            self._profile.start()

        self._set_environ(pointed_at(self.moto_endpoint))
        self.provisioned = provision(self.template, prefix=self.prefix)
        # Each function signs as its own role from now on, and moto checks: user code, which
        # holds no credentials, can use none of it.
        self.identities = create_identities(self.template, self.provisioned, prefix=self.prefix)
        self._moto.enforce_iam()
        self._set_environ(self.identities.admin_environment())
        boto3.DEFAULT_SESSION = None  # boto3.client() signs as the admin from now on
        aws.use_credentials(FunctionCredentials(self.identities))
        self._set_environ(function_environment(self.template, self.provisioned))
        # Callback servers and HTTP functions of local users and tests listen on 127.0.0.1; in
        # AWS the SSRF guard refuses private addresses (the template never sets these).
        self._set_environ({"ALLOW_PRIVATE_CALLBACKS": "true",
                           "ALLOW_PRIVATE_HTTP_FUNCTIONS": "true"})
        # No EventBridge Scheduler here: schedules keep their records only, and
        # local/scheduler.py fires them (see there).
        self._set_environ({"SCHEDULE_TARGET_ARN": ""})
        # No ECS here: fastlane jobs' commands run as sandboxed processes (local/containers.py).
        self._set_environ({"CONTAINER_RUNTIME": "process"})
        wiring.reset()  # clients cached by the layer may point at a previous moto

        self.invoker = Invoker(self.template, prefix=self.prefix)
        # fastlane's live logs: the WebSocket API and its @connections API (for the pump),
        # before any handler reads the settings that name them.
        self.websocket = LocalWebSocketApi(
            self.template, self.invoker, self.identities, host=self.host,
            port=0 if self.port == 0 else int(os.environ.get("TASKFN_WS_PORT", "3001")),
            api_id=self.provisioned.refs.get("WsApi", "local"))
        self.websocket.start()
        self._set_environ({"WS_URL": self.websocket.url,
                           "WS_MANAGEMENT_URL": self.websocket.management_url})
        wiring.reset()
        self.event_rules = EventRules(self.template, self.provisioned, self.invoker)
        self.containers = self._containers()
        containers.install(self.containers)
        self.gateway = Gateway(
            self.template,
            self.invoker,
            host=self.host,
            port=self.port,
            api_id=self.provisioned.refs.get("HttpApi", "local"),
            access_log=self.access_log,
        )
        self.gateway.start()
        self.pollers = Pollers(self.template, self.provisioned, self.invoker, workers=self.workers,
                               checkpoints=self._checkpoints())
        self.pollers.start()
        self.schedules = Schedules.of(self.template, self.invoker)
        self.schedules.start()
        self.scheduler = LocalScheduler.of(self.template, self.invoker,
                                           os.environ["TABLE_NAME"])
        if self.scheduler is not None:
            self.scheduler.start()
        if self.containers is not None:
            self.containers.recover()
        self._create_admin_token()

    def _checkpoints(self) -> StreamCheckpoints | None:
        """Kept stream positions, where the tables are kept (else every start reads from the
        start of a new, empty stream)."""
        if self.data_dir is None:
            return None
        checkpoints = StreamCheckpoints(boto3.session.Session().client("dynamodb"),
                                        self.prefix)
        checkpoints.create()
        return checkpoints

    def snapshot(self) -> Snapshot | None:
        """Snapshot the kept data now: what it cost (None in memory); tests measure with it."""
        if self._moto is not None and self.data_dir is not None:
            return self._moto.snapshot()
        return None

    def _containers(self) -> ProcessRuntime | None:
        """The jobs' back-end, where the template has their cluster and log group."""
        refs, attrs = self.provisioned.refs, self.provisioned.attrs
        if ("JobsCluster", "Arn") not in attrs or "JobLogGroup" not in refs:
            return None
        ledger = None
        if self.data_dir is not None:  # runs a killed stack leaves are told at the next start
            ledger = RunLedger(boto3.session.Session().client("dynamodb"), self.prefix)
            ledger.create()
        return ProcessRuntime(self.event_rules.put, boto3.session.Session().client("logs"),
                              cluster_arn=attrs[("JobsCluster", "Arn")],
                              log_group=refs["JobLogGroup"], region=REGION,
                              account=ACCOUNT_ID, ledger=ledger)

    def _create_admin_token(self) -> None:
        issued = issue_admin_token(self.admin_token, self.data_dir, os.environ["TABLE_NAME"])
        self.admin_token_generated = issued.generated
        self.admin_token_kept = issued.kept
        self.admin_token = issued.token

    def stop(self) -> None:
        """Stop schedules, pollers, gateway and moto, and restore the environment; safe to
        call twice."""
        if self.schedules is not None:
            self.schedules.stop()
            self.schedules = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if getattr(self, "websocket", None) is not None:
            # First: its clients leave, so a log pump has nobody to follow for and ends.
            self.websocket.stop()
            self.websocket = None
        if self.pollers is not None:
            self.pollers.stop()
            self.pollers = None
        if getattr(self, "containers", None) is not None:
            containers.install(None)
            self.containers.stop_all("taskfn local: stopping", wait_s=STOP_RUNS_S)
            self.containers = None
        if self.gateway is not None:
            self.port = self.gateway.port
            self.gateway.stop()
            self.gateway = None
        if self._profile is not None:
            self._profile.stop()  # the last figures, moto's included
            self._profile = None
            profiling.disable()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self.identities is not None:
            aws.use_credentials(None)
            self.identities = None
        apply(self._saved_environ)
        boto3.DEFAULT_SESSION = None
        if self._saved_environ:
            self._saved_environ = {}
            wiring.reset()

    def _set_environ(self, values: dict[str, str | None]) -> None:
        for name in values:
            self._saved_environ.setdefault(name, os.environ.get(name))
        apply(values)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
