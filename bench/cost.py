"""Figure 5: cost per million no-op tasks on AWS, from the request counts (figure 2), the
index design, and handler durations measured here (warm invocations against moto), beside the
same workload orchestrated by Step Functions Standard.

The workload: a client creates a task over the HTTP API (its token cached by the authorizer),
the executor runs it, and the client reads the outcome from list pages of 100.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import write_units
from bench.aws_requests import NOOP, moto_backend
from bench.common import Figure, Section

ROOT = Path(__file__).resolve().parents[1]

# Public list prices, us-east-1, x86, as published in 2025 (DynamoDB on-demand after its
# November 2024 cut). This machine has no network, so they are not re-read live: check them
# before relying on the dollars.
PRICES = {
    "date": "2025 list prices (DynamoDB on-demand as of the 2024-11-01 cut)",
    "region": "us-east-1",
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "http_api_request": 1.00 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "s3_put": 0.005 / 1e3,
    "s3_get": 0.0004 / 1e3,
    "logs_ingest_gb": 0.50,
    "eventbridge_event": 1.00 / 1e6,
    "step_functions_transition": 0.025 / 1e3,
}
LIST_PAGE = 100          # tasks the client reads per list request
BATCH = 4                # the executor's SQS batch size (template.yaml)
AWS_LATENCY_MS = 6.0     # a DynamoDB/SQS request in-region, for the sensitivity line
LOG_BYTES_PER_INVOCATION = 350   # START, END and REPORT lines, when Lambda writes them
EVENTS_BATCH = 100       # EventsFunction's stream batch size (template.yaml), reached under load
# Isolation "lambda": a warm synchronous Invoke in-region, request to answer, beyond the
# function's own duration. Not measurable here (no AWS); an assumption, said as such.
INVOKE_ROUND_TRIP_MS = 15.0
FUNCTION_MEMORY_MB = 512  # a function's Lambda without memSize (stores.lambdas)
EXECUTOR_MEMORY_MB = {"lambda": 256, "process": 1769}  # template.yaml, by isolation


@dataclass
class Durations:
    create_ms: float
    list_ms: float
    executor_per_task_ms: float
    log_bytes_per_task: float   # what the handlers themselves log, measured
    # Task events, from the stream records these tasks made, through EventsFunction in
    # batches of EVENTS_BATCH records: its time per batch, the events (PutEvents entries) and
    # the write units of the items it kept, per task.
    events_batch_ms: float = 0.0
    events_per_task: float = 0.0
    bus_entries_per_task: float = 0.0   # what went on the bus (no rule listens: none)
    events_wru_per_task: float = 0.0
    # Isolation "lambda": a no-op through a function Lambda's handler (function_entry, warm),
    # and the same run in the executor's own pre-started sandbox, which it replaces.
    function_lambda_ms: float = 0.0
    sandbox_run_ms: float = 0.0
    # Write units per task, by where they went ("table", each index), from the stream
    # records the tasks' own writes made (bench/write_units.py): measured, not assumed.
    write_units: dict[str, float] = field(default_factory=dict)
    # The table's other stream consumers these tasks reach through their mappings' filters:
    # {function: (records a task, ms a batch of EVENTS_BATCH, read units a task)}.
    stream_functions: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def wru_per_task(self) -> float:
        return sum(self.write_units.values())


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _handler(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _http_event(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    sample = json.loads((ROOT / "events/greencloud/create_task.json").read_text())
    sample.update(rawPath=path, body=body, routeKey=f"{method} {path}")
    sample.pop("queryStringParameters", None)
    sample["rawQueryString"] = ""
    sample["requestContext"]["http"].update(method=method, path=path)
    sample["requestContext"]["authorizer"]["lambda"]["user"] = "bench"
    return sample


def measure_durations(samples: int) -> Durations:
    """Warm invocation times of the handlers a task goes through, against moto."""
    from taskfn import wiring
    from taskfn.models import Caller, Scope
    from taskfn.services.functions import FunctionService, NewFunction

    logged = io.StringIO()
    with moto_backend(), contextlib.redirect_stdout(logged):
        caller = Caller(user="bench", scope=Scope.USER)
        function = FunctionService.from_env().create(caller, NewFunction(name="noop", source=NOOP))
        create = _handler(ROOT / "functions/greencloud/create_task.py")
        listing = _handler(ROOT / "functions/greencloud/list_tasks.py")
        executor = _handler(ROOT / "functions/executor/run_tasks.py")
        event = _http_event("POST", f"/v1/task/{function.id}", '{"n": 1}')
        queue = wiring.task_queue()
        written_before = len(_stream_records(filtered=False))
        create_times, executor_times, list_times = [], [], []
        for _ in range(2):  # warm-up: first imports, first code download
            create(event, _Context())
        for _ in range(samples):
            start = time.perf_counter()
            answer = create(event, _Context())
            create_times.append((time.perf_counter() - start) * 1000)
            assert answer["statusCode"] == 201, answer
        for _ in range(max(1, samples // BATCH) + 1):
            got = queue.client.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=BATCH)
            messages = got.get("Messages", [])
            if not messages:
                break
            records = [
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                 "body": m["Body"], "attributes": {"ApproximateReceiveCount": "1"},
                 "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                 "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
                for m in messages
            ]
            start = time.perf_counter()
            answer = executor({"Records": records}, _Context())
            executor_times.append((time.perf_counter() - start) * 1000 / len(records))
            assert answer == {"batchItemFailures": []}, answer
        tasks_written = _stream_records(filtered=False)[written_before:]
        events = _measure_events(samples + 2)
        others = _measure_other_stream_functions(samples + 2)
        function_ms, sandbox_ms = _measure_function_lambda(samples)
        list_event = _http_event("GET", "/v1/task/list")
        list_event["queryStringParameters"] = {"limit": str(LIST_PAGE)}
        for _ in range(max(3, samples // 4)):
            start = time.perf_counter()
            listing(list_event, _Context())
            list_times.append((time.perf_counter() - start) * 1000)
    tasks = samples + 2
    return Durations(
        statistics.median(create_times),
        statistics.median(list_times),
        statistics.median(executor_times),
        len(logged.getvalue().encode()) / tasks,
        *events,
        function_ms,
        sandbox_ms,
        {where: count / tasks for where, count in write_units.summed(tasks_written).items()},
        others,
    )


def _measure_function_lambda(samples: int) -> tuple[float, float]:
    """(ms of a no-op through a function Lambda's handler, ms of the same in a pool of the
    executor), both warm: the pool has its next sandbox ready, as between tasks."""
    import tempfile

    from taskfn.runtime import function_entry
    from taskfn.runtime.pool import SandboxPool
    from taskfn.runtime.python import Limits

    with tempfile.TemporaryDirectory(prefix="taskfn-bench-") as tmp:
        code = Path(tmp)
        (code / "main.py").write_text(NOOP)
        saved, function_entry.CODE_DIR = function_entry.CODE_DIR, code
        event = {"event": {"body": None}, "limits": {"timeout_s": 10}, "taskId": "t"}
        entry, pooled = [], []
        try:
            with SandboxPool(1) as pool:
                for _ in range(samples // 2 + 1):
                    function_entry.sandboxes.wait_ready(30)
                    began = time.perf_counter()
                    function_entry.handler(event, _Context())
                    entry.append((time.perf_counter() - began) * 1000)
                    pool.wait_ready(30)
                    began = time.perf_counter()
                    pool.run(code, {"body": None}, limits=Limits(timeout_s=10))
                    pooled.append((time.perf_counter() - began) * 1000)
        finally:
            function_entry.CODE_DIR = saved
    return statistics.median(entry), statistics.median(pooled)


def _stream_records(filtered: bool = True, function_id: str = "EventsFunction"
                    ) -> list[dict[str, Any]]:
    """Every record of the table's stream so far, as a function's mapping delivers them
    (EventsFunction's unless said; its filter applied, unless not `filtered`)."""
    import boto3

    from taskfn.local.pollers import StreamShards, passes
    from taskfn.local.template import load_template
    from taskfn.settings import get_settings

    (source,) = [s for s in load_template().stream_sources if s.function_id == function_id]
    table = boto3.client("dynamodb").describe_table(TableName=get_settings().table_name)
    shards = StreamShards(boto3.client("dynamodbstreams"), table["Table"]["LatestStreamArn"])
    shards.find()
    records: list[dict[str, Any]] = []
    while pages := [page for page in shards.read() if page]:
        records.extend(record for page in pages for record in page)
    return [r for r in records if not filtered or passes(r, source.filters)]


def _measure_events(tasks: int) -> tuple[float, float, float, float]:
    """(ms per batch, events per task, bus entries per task, write units per task) of
    EventsFunction over the stream records the measured tasks made (no rule on the bus)."""
    from taskfn import wiring

    publish = _handler(ROOT / "functions/events/publish.py")
    records = _stream_records()
    times, published, on_bus = [], 0, 0
    for start in range(0, len(records), EVENTS_BATCH):
        batch = records[start : start + EVENTS_BATCH]
        began = time.perf_counter()
        answer = publish({"Records": batch}, _Context())
        times.append((time.perf_counter() - began) * 1000 * EVENTS_BATCH / len(batch))
        published += answer["events"]
        on_bus += answer["on_bus"]
    table = wiring.table()
    items = table.client.query(
        TableName=table.name, KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "EVENTS#bench"}})["Items"]
    wru = sum(write_units.units(write_units.item_bytes(item)) for item in items)
    return (statistics.median(times) if times else 0.0, published / tasks, on_bus / tasks,
            wru / tasks)


STREAM_FUNCTIONS = ("TriggerFireFunction", "CallbackEnqueueFunction")


def _measure_other_stream_functions(tasks: int) -> dict[str, tuple[float, float, float]]:
    """What the table's other stream consumers do for these tasks (no triggers, no
    callbacks): the records their filters let through, each batch's time, the reads."""
    from bench.aws_requests import RequestCounter
    from taskfn import wiring
    from taskfn.local.template import load_template

    found = {}
    spec = load_template().functions
    counter = RequestCounter()
    counter.attach(wiring.table().client)
    for function_id in STREAM_FUNCTIONS:
        records = _stream_records(function_id=function_id)
        handler = _handler(spec[function_id].code_uri / (
            spec[function_id].handler.split(".")[0] + ".py"))
        times = []
        with counter.counting() as requests:
            for start in range(0, len(records), EVENTS_BATCH):
                batch = records[start : start + EVENTS_BATCH]
                began = time.perf_counter()
                handler({"Records": batch}, _Context())
                times.append((time.perf_counter() - began) * 1000 * EVENTS_BATCH / len(batch))
        reads = requests["dynamodb.Query"] + requests["dynamodb.GetItem"]
        # Each read: half a unit (eventually consistent, under 4 KB).
        found[function_id] = (len(records) / tasks, statistics.median(times) if times else 0.0,
                              0.5 * reads / tasks)
    return found


def _billed_gb_s(ms: float, memory_mb: int) -> float:
    return math.ceil(ms) / 1000 * memory_mb / 1024


# Provisioned capacity: $0.00065 per WCU-hour, one WCU = 3,600 writes an hour; at 70 % use.
PROVISIONED_WRU = 0.00065 / 3600 / 0.7


def platform_logs_written() -> bool:
    """Whether Lambda writes its START/END/REPORT lines: template.yaml's SystemLogLevel."""
    from taskfn.local.template import load_yaml

    template = load_yaml((ROOT / "template.yaml").read_text())
    return template["Parameters"]["SystemLogLevel"]["Default"] != "WARN"


def cost_lines(
    d: Durations, extra_latency_ms: float = 0.0, prices: dict[str, Any] = PRICES,
    isolation: str = "lambda", *, rule_takes_every_event: bool = False,
    platform_logs: bool | None = None,
) -> list[tuple[str, float, str]]:
    """(item, dollars per task, formula) for one no-op task: as measured (no rule on the
    bus), or with a rule on the bus that takes every task event."""
    p = prices
    bus_entries = d.events_per_task if rule_takes_every_event else d.bus_entries_per_task
    platform_bytes = LOG_BYTES_PER_INVOCATION if (
        platform_logs_written() if platform_logs is None else platform_logs) else 0
    create_ms = d.create_ms + 3 * extra_latency_ms       # GetItem, PutItem, SendMessage
    executor_ms = d.executor_per_task_ms + 2 * extra_latency_ms   # two UpdateItems
    function_lines: list[tuple[str, float, str]] = []
    if isolation == "lambda":
        # The executor waits for the function's Lambda instead of running the sandbox itself.
        executor_ms += d.function_lambda_ms + INVOKE_ROUND_TRIP_MS - d.sandbox_run_ms
        function_lines = [("function Lambdas", p["lambda_request"] + _billed_gb_s(
            d.function_lambda_ms, FUNCTION_MEMORY_MB) * p["lambda_gb_second"],
            f"1 invocation of the function's own Lambda × $0.20/M + {d.function_lambda_ms:.1f}"
            f" ms (measured) × {FUNCTION_MEMORY_MB} MB; the executor waits for it: +"
            f"{d.function_lambda_ms + INVOKE_ROUND_TRIP_MS - d.sandbox_run_ms:.1f} ms of its"
            f" own (an assumed {INVOKE_ROUND_TRIP_MS:g} ms invoke round trip, less its own"
            f" sandbox's {d.sandbox_run_ms:.1f} ms)")]
    list_ms = d.list_ms + extra_latency_ms
    wru = d.wru_per_task
    where = ", ".join(f"{name} {count:.2f}" for name, count in sorted(d.write_units.items()))
    rru = 0.5 + 0.5 * 1 / LIST_PAGE * 4   # function read; a list page of 100 entries ≈ 16 KB
    invocations = 1 + 1 / BATCH + 1 / LIST_PAGE
    events_invocations = d.events_per_task / EVENTS_BATCH
    logged_invocations = invocations + (1 if isolation == "lambda" else 0)
    logs_gb = (logged_invocations * platform_bytes + d.log_bytes_per_task) / 1e9
    return [
        ("HTTP API requests", (1 + 1 / LIST_PAGE) * p["http_api_request"],
         f"(1 create + 1/{LIST_PAGE} list) × $1.00/M"),
        ("Lambda requests", invocations * p["lambda_request"],
         f"(1 create + 1/{BATCH} executor batch + 1/{LIST_PAGE} list) × $0.20/M"),
        ("Lambda duration", (
            _billed_gb_s(create_ms, 256) + _billed_gb_s(list_ms, 256) / LIST_PAGE
            + _billed_gb_s(executor_ms * BATCH, EXECUTOR_MEMORY_MB[isolation]) / BATCH)
         * p["lambda_gb_second"],
         f"create {create_ms:.1f} ms × 256 MB + executor {executor_ms:.1f} ms × "
         f"{EXECUTOR_MEMORY_MB[isolation]} MB"
         f" + list {list_ms:.1f} ms × 256 MB / {LIST_PAGE}, billed per ms × $0.0000166667/GB-s"),
        ("SQS requests", (1 + 2 / BATCH) * p["sqs_request"],
         f"(1 send + 1/{BATCH} receive + 1/{BATCH} delete batch) × $0.40/M"),
        ("DynamoDB writes", wru * p["dynamodb_wru"],
         f"{wru:.2f} WRU, measured from the tasks' stream records by DynamoDB's rules"
         f" ({where}) × ${p['dynamodb_wru'] * 1e6:.3f}/M"),
        ("DynamoDB reads", rru * p["dynamodb_rru"],
         f"{rru:.2f} RRU (function read 0.5 + list share) × $0.125/M"),
        ("CloudWatch Logs", logs_gb * p["logs_ingest_gb"],
         f"({logged_invocations:.2f} invocations × {platform_bytes} B of START/END/REPORT"
         + (" (SystemLogLevel WARN: not written)" if not platform_bytes else "")
         + f" + {d.log_bytes_per_task:.0f} B logged by the handlers, measured) × $0.50/GB"),
        ("S3", 0.0, "none for a no-op: code cached per executor, output inline"),
        ("EventBridge events", bus_entries * prices.get("eventbridge_event", 0.0),
         f"{bus_entries:.1f} of {d.events_per_task:.1f} task events put on the bus"
         f" (PutEvents entries) × $1.00/M"
         + (": a rule takes every event" if rule_takes_every_event
            else ": measured, no rule on the bus (only events a rule may take are put)")),
        ("events Lambda", events_invocations * p["lambda_request"]
         + events_invocations * _billed_gb_s(d.events_batch_ms, 256) * p["lambda_gb_second"],
         f"{d.events_per_task:.1f} stream records / {EVENTS_BATCH} a batch, each batch"
         f" {d.events_batch_ms:.1f} ms × 256 MB (measured); stream reads by Lambda are free"),
        *(
            (f"{function_id} (stream)", share / EVENTS_BATCH * (
                p["lambda_request"] + _billed_gb_s(batch_ms, 256) * p["lambda_gb_second"])
             + rru * p["dynamodb_rru"],
             f"{share:.1f} stream records a task pass its filter / {EVENTS_BATCH} a batch, each"
             f" batch {batch_ms:.1f} ms × 256 MB + {rru:.3f} RRU a task (measured)")
            for function_id, (share, batch_ms, rru) in sorted(d.stream_functions.items())
        ),
        ("DynamoDB writes (kept events)", d.events_wru_per_task * p["dynamodb_wru"],
         f"{d.events_wru_per_task:.2f} WRU: one compressed item per stream batch and owner"
         " (measured item sizes)"),
        *function_lines,
    ]


def step_functions_lines(d: Durations) -> list[tuple[str, float, str]]:
    """The same task as one Step Functions Standard execution: API → StartExecution → a
    Lambda task state that runs the function → end (3 state transitions with the start)."""
    p = PRICES
    return [
        ("HTTP API requests", p["http_api_request"], "1 × $1.00/M (StartExecution integration)"),
        ("state transitions", 3 * p["step_functions_transition"], "3 × $0.025/1k"),
        ("Lambda (the function)", p["lambda_request"] + _billed_gb_s(
            d.executor_per_task_ms, 1769) * p["lambda_gb_second"], "1 request + duration"),
    ]


def async_invoke_lines(d: Durations) -> list[tuple[str, float, str]]:
    """The same workload on Lambda async invoke with destinations: a create Lambda writes the
    task (owner-list index included) and invokes the function with InvocationType=Event; the
    OnSuccess/OnFailure destination, a Lambda, writes the outcome; the client lists as here.
    It gives up what taskfn keeps: a run at most once at a time (async invoke may run an
    event twice), a status while running, convergence, task events and callbacks."""
    p = PRICES
    write = 2   # the item and its owner-list entry, at create and again at the outcome
    return [
        ("HTTP API requests", (1 + 1 / LIST_PAGE) * p["http_api_request"],
         f"(1 create + 1/{LIST_PAGE} list) × $1.00/M"),
        ("Lambda requests", (3 + 1 / LIST_PAGE) * p["lambda_request"],
         "create + the function + the destination Lambda (+ list) × $0.20/M"),
        ("Lambda duration", (2 * _billed_gb_s(d.create_ms, 256)
                             + _billed_gb_s(d.function_lambda_ms, FUNCTION_MEMORY_MB))
         * p["lambda_gb_second"],
         f"create and destination {d.create_ms:.1f} ms × 256 MB each + the function "
         f"{d.function_lambda_ms:.1f} ms × {FUNCTION_MEMORY_MB} MB"),
        ("DynamoDB writes", 2 * write * p["dynamodb_wru"],
         f"{2 * write} WRU (put + owner-list entry; outcome + its entry) × $0.625/M"),
    ]


def per_million(lines: list[tuple[str, float, str]]) -> float:
    """Dollars per million tasks: the sum of the per-task lines."""
    return sum(dollars for _, dollars, _ in lines) * 1e6


def breakdown(lines: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    """The lines as the report shows them, per million tasks."""
    return [
        {"item": item, "dollars": round(dollars * 1e6, 4), "formula": formula}
        for item, dollars, formula in lines
    ]


TARGET_DOLLARS = 5


def _within_target(name: str, dollars: float, note: str) -> Figure:
    """A cost per million tasks, against the ≤ $5 target."""
    return Figure(name=name, value=round(dollars, 3), unit="$", target=f"<= ${TARGET_DOLLARS}",
                  met=dollars <= TARGET_DOLLARS, note=note)


def measure(quick: bool = False, sections: list[Section] | None = None) -> Section:
    durations = measure_durations(samples=20 if quick else 60)
    lines = cost_lines(durations)
    sfn_lines = step_functions_lines(durations)
    total = per_million(lines)
    with_latency = per_million(cost_lines(durations, AWS_LATENCY_MS))
    sfn = per_million(sfn_lines)
    provisioned_prices = {**PRICES, "dynamodb_wru": PROVISIONED_WRU}
    provisioned = per_million(cost_lines(durations, 0.0, provisioned_prices))
    every_event = per_million(cost_lines(durations, rule_takes_every_event=True))
    with_platform_logs = per_million(cost_lines(durations, platform_logs=True))
    process_lines = cost_lines(durations, isolation="process")
    process = per_million(process_lines)
    async_lines = async_invoke_lines(durations)
    async_invoke = per_million(async_lines)
    figures = [
        _within_target("cost per million no-op tasks", total,
                       "isolation lambda (the default: a Lambda per function); durations "
                       "measured against moto, the invoke round trip assumed; see the "
                       "breakdown"),
        _within_target("same, isolation process (user code in the executor)", process,
                       "single-tenant deployments only (README, Security model)"),
        _within_target("same, with 6 ms per AWS request added to handler time", with_latency,
                       "real DynamoDB/SQS latency is billed as Lambda duration"),
        _within_target("same, table on provisioned write capacity at 70 % use", provisioned,
                       "steady load only: $0.00065 per WCU-hour; on-demand writes are ~5x that"),
        _within_target("same, with a rule on the bus taking every task event", every_event,
                       f"{durations.events_per_task:.1f} PutEvents entries a task at $1.00/M;"
                       " with no rule (as measured) none are put, the events stay readable at"
                       " /v1/events/tasks.r1"),
        _within_target("same, with Lambda's START/END/REPORT lines (SystemLogLevel=INFO)",
                       with_platform_logs,
                       f"{LOG_BYTES_PER_INVOCATION} B a Lambda invocation at $0.50/GB"),
        Figure(
            name="Step Functions Standard, same workload",
            value=round(sfn, 3),
            unit="$",
            note="3 state transitions per task at $0.025 per 1,000",
        ),
        Figure(
            name="Lambda async invoke with destinations, same workload",
            value=round(async_invoke, 3),
            unit="$",
            note="create Lambda → Invoke(Event) → the function → a destination Lambda writing "
                 "the outcome; without a single run at a time, a Running status, "
                 "convergence, task events or callbacks",
        ),
    ]
    by_item: dict[str, list[str]] = {}
    for column, breakdown_lines in enumerate((lines, process_lines)):
        for item, dollars, formula in breakdown_lines:
            row = by_item.setdefault(item, [item, "–", "–", formula])
            row[1 + column] = f"${dollars * 1e6:.3f}"
            if column == 1 and formula != row[3]:
                row[3] += f"; process: {formula}"
    tables = [
        {"title": "Per million no-op tasks, line by line (as measured: no rule on the bus)",
         "columns": ["item", "isolation lambda", "isolation process", "formula"],
         "rows": [*by_item.values(),
                  ["total", f"${total:.2f}", f"${process:.2f}", ""]]},
        {"title": "The same workload elsewhere, line by line",
         "columns": ["design", "item", "per million", "formula"],
         "rows": [*(["Step Functions Standard", item, f"${dollars * 1e6:.3f}", formula]
                    for item, dollars, formula in sfn_lines),
                  *(["Lambda async invoke + destinations", item, f"${dollars * 1e6:.3f}",
                     formula] for item, dollars, formula in async_lines)]},
    ]
    return Section(
        key="cost",
        title="Cost per million tasks on AWS",
        summary=(
            f"taskfn ≈ ${total:.2f} per million no-op tasks with a Lambda per function "
            f"(${process:.2f} with user code in the executor; ≈ ${with_latency:.2f} with real "
            f"request latency) against ≈ ${sfn:.2f} with Step Functions Standard and ≈ "
            f"${async_invoke:.2f} with Lambda async invoke and destinations (which keep none "
            "of taskfn's guarantees). "
            "Formula: Σ (units per task × unit price) × 10^6, per line below."
        ),
        figures=figures,
        details={
            "tables": tables,
            "prices": PRICES,
            "durations_ms": {
                "create_task": round(durations.create_ms, 2),
                "list_tasks page": round(durations.list_ms, 2),
                "executor per task": round(durations.executor_per_task_ms, 2),
                "log bytes per task": round(durations.log_bytes_per_task),
                "events Lambda per batch of 100": round(durations.events_batch_ms, 2),
                "events per task": round(durations.events_per_task, 2),
                "bus entries per task": round(durations.bus_entries_per_task, 2),
                "write units per task": {k: round(v, 3)
                                         for k, v in durations.write_units.items()},
                "event WRU per task": round(durations.events_wru_per_task, 3),
                "function Lambda handler per task": round(durations.function_lambda_ms, 2),
                "executor sandbox run per task": round(durations.sandbox_run_ms, 2),
                "invoke round trip (assumed)": INVOKE_ROUND_TRIP_MS,
            },
            "breakdown_per_million": breakdown(lines),
            "breakdown_per_million_isolation_process": breakdown(
                cost_lines(durations, isolation="process")),
            "step_functions_per_million": breakdown(sfn_lines),
            "async_invoke_per_million": breakdown(async_lines),
            "not_counted": (
                "fixed monthly costs independent of volume: the SQS event-source mapping's "
                "idle long polls, PITR backup storage, DynamoDB/S3 storage of retained records"
            ),
        },
    )


if __name__ == "__main__":
    print(json.dumps(measure(quick=True).as_dict(), indent=2))
