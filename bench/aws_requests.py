"""Figure 2: AWS requests per operation, counted through botocore's event hooks against moto,
beside the minimum the design allows."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import Figure, Section
from taskfn import lifecycle, wiring
from taskfn.models import Caller, Scope, now_ns

NOOP = "def handler(event, context):\n    return None\n"
ALICE = Caller(user="alice", scope=Scope.USER)


@contextlib.contextmanager
def moto_backend() -> Iterator[str]:
    """A moto server with template.yaml's resources, and this process's environment pointed
    at it (restored afterwards)."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    from taskfn.local import environment
    from taskfn.local.template import load_template

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
    ).close()
    try:
        with environment.patched(environment.pointed_at(endpoint)):
            provisioned = environment.provisioned_environment(load_template())
            with environment.patched(provisioned):
                wiring.reset()
                yield endpoint
    finally:
        wiring.reset()
        server.stop()


class RequestCounter:
    """Counts every HTTP request boto3 sends (retries included), by service and operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send", self._count)

    def _count(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}.{operation}"] += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        """The requests made inside the block."""
        before = Counter(self.calls)
        found: Counter[str] = Counter()
        yield found
        found.update(self.calls - before)


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", source)
    return buffer.getvalue()


# (operation, minimum, why the design allows no fewer, why we are above it when we are)
MINIMUMS: dict[str, tuple[int, str]] = {
    "create task": (3, "1 conditional write + 1 counter ADD (function metrics) + 1 send"),
    "create task with an Idempotency-Key": (
        5, "the key's conditional put + the task's write + 1 counter ADD + the claim marked "
           "settled (so a retry after a delete runs nothing) + 1 send"),
    "the same create retried with its key": (
        3, "the function read (the create's checks come first, so a refused request claims "
           "no key) + the key's conditional put (refused, the claim returned) + 1 read of "
           "the task"),
    "get task": (1, "1 read"),
    "list one page": (1, "1 Query"),
    "start": (1, "1 conditional write"),
    "complete": (2, "1 conditional write + 1 counter ADD"),
    "executor, one task (code cached)": (
        3, "start + complete + counter ADD (the pause check is read once per function per "
           "2 s)"),
    "executor, one task (first of a build)": (
        5, "start + pause check + code download + complete + counter ADD"),
    "build": (3, "1 read (ownership) + 1 S3 put + 1 write"),
    "authorizer (per token, per cache window)": (1, "1 read by token hash"),
    # --- public endpoints ---
    "public call (POST /gc/{id})": (
        5, "the endpoint read + the day count's conditional ADD (the daily limit, and the "
           "endpoint's counters) + the task's write + 1 counter ADD (function metrics) + 1 send"),
    "public result, no token (GET /gc/{id}/result)": (1, "1 read of the task"),
    # --- schedules ---
    "scheduled run (RunScheduleFunction)": (
        4, "the schedule read (active, payload) + the task's conditional write + 1 counter ADD "
           "+ 1 send"),
    "scheduled run delivered again (same fire time)": (
        3, "the schedule read + the task's conditional write (refused: one task per fire) + "
           "1 read of the first's task"),
    # --- triggers ---
    "trigger fire (TriggerFireFunction, one matching trigger, includeResult)": (
        5, "1 Query of the function's triggers + the chain budget's conditional ADD (fan-out "
           "bounded) + the child's conditional write + 1 counter ADD + 1 send (the result is "
           "in the stream record when inline)"),
    # --- fastlane jobs ---
    "fastlane enqueue (POST /tasks/<t>, a new group)": (
        2, "1 transaction (the group with its words and count, the job, the execution's "
           "pointer, its task record) + 1 send"),
    "fastlane enqueue into an existing group": (
        2, "1 transaction (the group touched, the job, the pointer, the task) + 1 send"),
    "fastlane execution (executor launch, RUNNING and STOPPED events)": (
        7, "start + launched (conditional writes) + the timeout watch's send; RUNNING: 1 "
           "conditional write; STOPPED: 2 GetLogEvents (a stream's end is known only from "
           "the page that gives its token back) + 1 conditional write. RunTask is ECS's, not "
           "counted (a fake back-end here)"),
}
WHY_ABOVE = {
    "fastlane enqueue (POST /tasks/<t>, a new group)": (
        "one GetItem of the group first: whether the transaction creates it (with its search "
        "words and the owner's count) or touches it. A transaction cannot branch on an item's "
        "existence, and writing the words every time would cost up to 32 writes."
    ),
    "fastlane enqueue into an existing group": (
        "the same GetItem of the group."
    ),
    "fastlane execution (executor launch, RUNNING and STOPPED events)": (
        "each event reads the task first (consistent): an event is matched to the current "
        "launch (its execution id, cell and task ARN) and a STOPPED one decides the ending "
        "from what was asked of the run (a stop, the timeout) before it writes."
    ),
    "create task with an Idempotency-Key": (
        "one GetItem of the function, as for any create (see above)."
    ),
    "create task": (
        "one GetItem of the function first: it proves the function exists, is the caller's, "
        "is not paused and has code, and copies its code and timeout into the task so the "
        "executor reads nothing else. A TransactWriteItems (ConditionCheck + Put) would make "
        "it one request, but transactional writes cost twice the write units, which is more "
        "money than the 0.5 read unit it saves."
    ),
    "public call (POST /gc/{id})": (
        "the task is created through TaskService like any other: one GetItem of the "
        "function (exists, not paused, has code; its code and timeout copied into the task), "
        "for the reasons given for create task."
    ),
    "scheduled run (RunScheduleFunction)": (
        "the task is created through TaskService like any other: one GetItem of the "
        "function (exists, not paused, has code), for the reasons given for create task."
    ),
    "scheduled run delivered again (same fire time)": (
        "the same GetItem of the function, made before the refused write."
    ),
    "trigger fire (TriggerFireFunction, one matching trigger, includeResult)": (
        "the child is created through TaskService like any other: one GetItem of the next "
        "function (exists, still the owner's, not paused, has code)."
    ),
    "build": (
        "the build record is its own PutItem beside the function's UpdateItem; a "
        "TransactWriteItems would merge them at twice the write units. And the owner's count "
        "of builds in progress (GET /v1/metrics' pendingBuilds), +1 and -1 around the build. "
        "Builds are rare."
    ),
}


def measure(quick: bool = False) -> Section:
    from taskfn.runtime.codecache import CodeCache
    from taskfn.services.builds import BuildService
    from taskfn.services.executor import Executor
    from taskfn.services.functions import FunctionService, NewFunction
    from taskfn.services.holds import HoldService
    from taskfn.services.tasks import TaskService
    from taskfn.services.tokens import TokenService
    from taskfn.settings import get_settings

    counts: dict[str, Counter[str]] = {}
    with moto_backend(), tempfile.TemporaryDirectory() as cache:
        counter = RequestCounter()
        for client in (wiring.table().client, wiring.blobs().client, wiring.task_queue().client):
            counter.attach(client)
        tokens, tasks = TokenService.from_env(), TaskService.from_env()
        functions, builds = FunctionService.from_env(), BuildService.from_env()
        executor = Executor(
            wiring.tasks(), wiring.functions(), wiring.blobs(), CodeCache(Path(cache)),
            "bench-cell", get_settings(), holds=HoldService.from_env(),
        )
        issued = tokens.create("alice", "user")
        function = functions.create(ALICE, NewFunction(name="noop"))
        with counter.counting() as found:
            builds.create(ALICE, function.id, _zip(NOOP))
        counts["build"] = found
        with counter.counting() as found:
            tokens.authenticate(issued.token)
        counts["authorizer (per token, per cache window)"] = found
        with counter.counting() as found:
            task = tasks.create(ALICE, function.id, body={"n": 1}, query={}, size=7)
        counts["create task"] = found
        for name in ("create task with an Idempotency-Key",
                     "the same create retried with its key"):
            with counter.counting() as found:
                tasks.create(ALICE, function.id, body={"n": 2}, query={}, size=7,
                             idempotency_key="bench-key")
            counts[name] = found
        with counter.counting() as found:
            tasks.get(ALICE, task.task_guid)
        counts["get task"] = found
        with counter.counting() as found:
            tasks.list(ALICE, limit=100, cursor=None)
        counts["list one page"] = found
        with counter.counting() as found:
            wiring.tasks().apply(task.task_guid, lifecycle.start("bench-other", now_ns()))
        counts["start"] = found
        with counter.counting() as found:
            wiring.tasks().apply(
                task.task_guid, lifecycle.complete("bench-other", now_ns(), failed=False)
            )
        counts["complete"] = found
        first = tasks.create(ALICE, function.id, body=None, query={}, size=0)
        with counter.counting() as found:
            executor.run(first.task_guid)
        counts["executor, one task (first of a build)"] = found
        second = tasks.create(ALICE, function.id, body=None, query={}, size=0)
        with counter.counting() as found:
            executor.run(second.task_guid)
        counts["executor, one task (code cached)"] = found
        # --- public endpoints ---
        from taskfn.services.endpoints import EndpointService, PublicCall, PublicService

        endpoint = EndpointService.from_env().create(ALICE, function.id, {"daily_limit": 100})
        public = PublicService.from_env()
        with counter.counting() as found:
            called = public.call(endpoint.id, PublicCall(None, "203.0.113.10", {"n": 3}, {}, 7))
        counts["public call (POST /gc/{id})"] = found
        executor.run(called.task_guid)
        with counter.counting() as found:
            public.result(called.task_guid, None)
        counts["public result, no token (GET /gc/{id}/result)"] = found
        # --- schedules ---
        from taskfn.services.schedules import ScheduleService

        schedules = ScheduleService.from_env()
        schedule = schedules.create(ALICE, {"function_id": function.id, "cron": "* * * * *",
                                            "timezone": "Europe/Berlin", "description": ""})
        schedules.set_payload(ALICE, schedule.id, b'{"n": 4}', {}, "application/json")
        for name in ("scheduled run (RunScheduleFunction)",
                     "scheduled run delivered again (same fire time)"):
            with counter.counting() as found:
                assert schedules.run(schedule.id, "alice", "2026-12-02T10:15:00Z") is not None
            counts[name] = found
        # --- triggers ---
        from taskfn.services.triggers import TriggerService
        from taskfn.stores.table import to_item

        triggers = TriggerService.from_env()
        triggers.create(ALICE, {"function_id": function.id, "next_id": function.id,
                                "status": 200, "include_result": True, "tags": [],
                                "description": ""})
        finished = wiring.table().get(f"TASK#{second.task_guid}", "TASK", consistent=True)
        change = {"eventName": "MODIFY", "dynamodb": {
            "NewImage": to_item({**finished, "response_status": 200}),
            "OldImage": to_item({**finished, "state": "Running"})}}
        with counter.counting() as found:
            assert len(triggers.fire([change])) == 1
        counts["trigger fire (TriggerFireFunction, one matching trigger, includeResult)"] = found

        counts.update(_jobs(counter))

    section = Section(
        key="aws_requests",
        title="AWS requests per operation",
        summary=(
            "Counted with botocore's before-send hook (every HTTP request, retries included) "
            "against moto; the minimum is what the design allows."
        ),
    )
    for name, (minimum, how) in MINIMUMS.items():
        found = counts[name]
        total = sum(found.values())
        note = ", ".join(f"{n} {op}" for op, n in sorted(found.items()))
        if total > minimum:
            note += ". Above the minimum: " + WHY_ABOVE.get(name, "unexplained")
        section.figures.append(
            Figure(
                name=name,
                value=total,
                unit="requests",
                baseline=minimum,
                baseline_name=how,
                target="= minimum",
                met=total <= minimum,
                note=note,
            )
        )
    section.details = {name: dict(found) for name, found in counts.items()}
    return section


class _FakeContainers:
    """A container back-end that starts nothing: ECS's own requests are not the platform's."""

    name = "bench"

    def launch(self, launch: Any) -> str:
        return f"arn:aws:ecs:us-east-1:123456789012:task/bench/{launch.execution_id[-12:]}"

    def stop(self, ref: str, reason: str) -> None:
        pass


def _jobs(counter: RequestCounter) -> dict[str, Counter[str]]:
    """A fastlane job enqueued twice, and one execution from launch to its end."""
    import boto3

    from taskfn.adapters.fastlane import parse_enqueue
    from taskfn.runtime.containers import Launch, log_stream, source_record, state_change
    from taskfn.services.containers import ContainerRuns
    from taskfn.services.executor import Executor
    from taskfn.services.jobs import JobService
    from taskfn.settings import get_settings
    from taskfn.stores.jobs import JobsStore
    from taskfn.stores.queue import TaskQueue

    settings, logs = get_settings(), boto3.client("logs")
    counter.attach(logs)
    runs = ContainerRuns(wiring.tasks(), JobsStore(wiring.table()), wiring.blobs(),
                         wiring.task_queue(),
                         TaskQueue(wiring.task_queue().client, settings.container_watch_queue_url),
                         _FakeContainers(), logs, settings)
    jobs = JobService.from_env()
    counts: dict[str, Counter[str]] = {}
    payload = parse_enqueue(b'{"image": "alpine", "command": "echo hello"}')
    for name in ("fastlane enqueue (POST /tasks/<t>, a new group)",
                 "fastlane enqueue into an existing group"):
        with counter.counting() as found:
            enqueued = jobs.enqueue(ALICE, "bench-group", payload, request_ip="203.0.113.10")
        counts[name] = found
    guid = str(enqueued.execution_id)
    task = wiring.tasks().get(guid)
    executor = Executor(wiring.tasks(), wiring.functions(), wiring.blobs(), None,
                        "bench-cell", settings, containers=runs)
    arn = _FakeContainers().launch(Launch(task_guid=guid, execution_id=guid, image="", argv=()))
    launch = Launch(task_guid=guid, execution_id=guid, image=task.image, argv=("echo", "hello"))
    event = {"cluster_arn": settings.jobs_cluster_arn, "task_arn": arn, "launch": launch,
             "region": "us-east-1", "account": "123456789012", "time": "t"}
    logs.create_log_stream(logGroupName=settings.job_log_group, logStreamName=log_stream(arn))
    logs.put_log_events(logGroupName=settings.job_log_group, logStreamName=log_stream(arn),
                        logEvents=[{"timestamp": now_ns() // 1_000_000,
                                    "message": source_record("stdout", "hello")}])
    with counter.counting() as found:
        executor.run(guid)
        assert runs.on_event(state_change(last_status="RUNNING", **event)) == "noted"
        assert runs.on_event(state_change(last_status="STOPPED", exit_code=0,
                                          stop_code="EssentialContainerExited",
                                          **event)) == "succeeded"
    counts["fastlane execution (executor launch, RUNNING and STOPPED events)"] = found
    return counts


if __name__ == "__main__":
    import json

    print(json.dumps(measure().as_dict(), indent=2))
