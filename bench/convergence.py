"""One convergence pass over 10,000 open tasks, against the floor of any pass: reading them.

The tasks are written straight into moto with BatchWriteItem, in the shape TaskStore.put_new
writes (`TaskStore.item_for`), as a realistic mix: mostly young Pending tasks, some Pending
long enough to be dispatched again, some Running on a cell that stopped heartbeating, some
expired, and a few Completed or Resolving tasks with a completion callback (which stay on the
open index until deleted). Then `Converger.run()` runs once, built from taskfn.wiring as the
ConvergerFunction builds it, with a clock fixed at the instant the mix was computed, so exactly
the intended share is stale however long the writing took.

The floor, measured in the same run just before the pass, is the bare cost of what any pass
must do to see every open task: the paged Query of the open index (keys) and BatchGetItem of
those keys in hundreds with the pass's projection, as raw boto3 calls (no parsing into records).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.aws_requests import RequestCounter, moto_backend
from bench.common import Figure, Section
from taskfn import ids
from taskfn.lifecycle import State
from taskfn.models import TaskRecord
from taskfn.services.converger import READ_ATTRIBUTES, SECOND_NS, Step
from taskfn.settings import Settings
from taskfn.stores.table import to_item
from taskfn.stores.tasks import TaskStore, open_partitions

TASKS, QUICK_TASKS = 10_000, 1_000
READ_PHASE_TARGET = 1.2  # the store's reading (parsing into records) over the bare requests
CALLBACK_URL = "https://callbacks.example.com/task-done"
CELL_API = {"domain": "bench", "task_definition": {"root_fs": "docker:///bench"}}
CELLS = 8  # built-in executor cells the Running tasks are spread over
BATCH_WRITE = 25  # BatchWriteItem's limit
BATCH_GET = 100  # BatchGetItem's limit, as Table.get_many uses it
SEND_BATCH = 10  # SendMessageBatch's limit


@dataclass(frozen=True)
class Kind:
    """One share of the mix: how its tasks look (`shape`) and the step convergence must take
    for each of them."""

    name: str
    shape: str
    share: float
    step: Step | None


KINDS = (
    Kind("pending, young", "young", 0.60, None),
    Kind("pending, past the dispatch grace", "waiting", 0.10, Step.DISPATCH),
    Kind("pending with placement tags, past the grace", "tagged", 0.05, None),
    Kind("pending, past the pending expiry", "expired", 0.05, Step.EXPIRE),
    Kind("running, heartbeating", "running", 0.08, None),
    Kind("running, cell lost", "silent", 0.08, Step.CELL_LOST),
    Kind("completed with a callback, past the kick duration", "unresolved", 0.02, Step.KICK),
    Kind("resolving, callback stalled", "stalled", 0.01, Step.DEMOTE),
    Kind("completed with a callback, past the completed expiry", "old", 0.01, Step.DELETE),
)


def split(count: int, shares: Sequence[float]) -> list[int]:
    """`count` split in proportion to `shares` (largest remainder): whole numbers summing to
    `count`, each within 1 of its exact share."""
    total = sum(shares)
    exact = [count * share / total for share in shares]
    parts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - parts[i], reverse=True)
    for index in by_remainder[: count - sum(parts)]:
        parts[index] += 1
    return parts


def _ago(now: int, seconds: float) -> int:
    return now - int(seconds * SECOND_NS)


def make_task(kind: Kind, index: int, spread: float, now: int, settings: Settings) -> TaskRecord:
    """Task `index` of the mix, of `kind`; `spread` in (0, 1) places its age within the
    kind's range, so ages are spread, not all equal. Ages follow `settings`, so each kind
    meets (or misses) the thresholds it is meant to whatever they are."""
    grace, expiry = settings.dispatch_grace_s, settings.pending_expiry_s
    timeout, kick = settings.cell_timeout_s, settings.kick_duration_s
    completed_expiry = settings.completed_expiry_s
    cell = f"executor-bench-{index % CELLS}"
    fields: dict[str, Any] = {}
    shape = kind.shape
    if shape == "young":
        created = updated = _ago(now, grace * 0.5 * spread)
    elif shape == "waiting":  # just past the grace: the first pass that sends it again
        period = min(settings.converger_period_s, grace)
        created = updated = _ago(now, grace + period * (0.1 + 0.8 * spread))
    elif shape == "tagged":
        created = updated = _ago(now, grace + (expiry - grace) * (0.1 + 0.8 * spread))
        fields.update(placement_tags=["gpu"], **CELL_API)  # listed by domain, not dispatched
    elif shape == "expired":
        created = updated = _ago(now, expiry * (1.1 + spread))
    elif shape in ("running", "silent"):
        created = _ago(now, grace + timeout * 3)
        age = timeout * 0.5 * spread if shape == "running" else timeout * (1.5 + spread)
        updated = _ago(now, age)
        fields.update(state=State.RUNNING, cell_id=cell, node=cell, started_at=updated)
    elif shape in ("unresolved", "stalled", "old"):  # finished, with a completion callback
        if shape == "old":
            completed = _ago(now, completed_expiry * (1.5 + spread))
        else:  # past the kick duration, not the completed expiry
            completed = _ago(now, kick + (completed_expiry - kick) * (0.1 + 0.8 * spread))
        created, updated = completed - 5 * SECOND_NS, completed
        fields.update(
            state=State.RESOLVING if shape == "stalled" else State.COMPLETED,
            completion_callback_url=CALLBACK_URL,
            **CELL_API,
            node=cell,
            started_at=created,
            first_completed_at=completed,
            result="ok",
        )
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return TaskRecord(
        task_guid=ids.new_id(created / SECOND_NS),
        owner=f"user{index % 50}",
        created_at=created,
        updated_at=updated,
        function_id=FUNCTIONS[index % len(FUNCTIONS)],
        build_id=ids.new_id(created / SECOND_NS),
        code_key=f"code/{index % 50:04d}/build.zip",
        input={"body": {"n": index, "text": "lorem ipsum " * 12}, "query": {"mode": "bench"}},
        **fields,
    )


# The tasks' functions: fifty, as the owners (a pass finishing many tasks of one function
# writes its counters once).
FUNCTIONS = tuple(f"6560f1a0{n:016x}" for n in range(50))


def task_mix(
    count: int, now: int, settings: Settings, kinds: Sequence[Kind] = KINDS
) -> list[tuple[Kind, TaskRecord]]:
    """`count` open tasks in the proportions of `kinds`, kinds interleaved (not in blocks,
    the same order every run), each kind's ages spread over its range."""
    slots = [
        (kind, (j + 0.5) / size)
        for kind, size in zip(kinds, split(count, [k.share for k in kinds]), strict=True)
        for j in range(size)
    ]
    random.Random(count).shuffle(slots)
    return [
        (kind, make_task(kind, index, spread, now, settings))
        for index, (kind, spread) in enumerate(slots)
    ]


def record_item(task: TaskRecord) -> dict[str, Any]:
    """The item TaskStore writes for `task` in its state: put_new's shape, with the open
    index a finished task with a callback (or a Cell API task) keeps until deletion."""
    return TaskStore.item_for(task)


def put_items(client: Any, table: str, items: Sequence[dict[str, Any]]) -> int:
    """BatchWriteItem in 25s, unprocessed items retried; the number of requests it took."""
    requests = 0
    for start in range(0, len(items), BATCH_WRITE):
        chunk = items[start : start + BATCH_WRITE]
        pending = {table: [{"PutRequest": {"Item": to_item(v)}} for v in chunk]}
        for attempt in range(8):
            requests += 1
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise RuntimeError("BatchWriteItem left items unprocessed after retries")
    return requests


# --- sizes and read capacity (DynamoDB's published rules; moto does not compute them) ----


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one typed attribute value as DynamoDB counts them: strings and binaries their
    length, numbers 1 byte per 2 significant digits + 1, booleans and null 1, lists and maps
    3 bytes + 1 per element + their elements (map keys included)."""
    (tag, inner), = value.items()
    if tag == "S":
        return len(inner.encode())
    if tag == "B":
        return len(inner)
    if tag == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    if tag == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    if tag == "SS":
        return sum(len(s.encode()) for s in inner)
    if tag == "NS":
        return sum(value_size({"N": n}) for n in inner)
    if tag == "BS":
        return sum(len(b) for b in inner)
    raise ValueError(f"unknown DynamoDB type {tag}")


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a typed item: every attribute's name and value."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def read_units(sizes: Sequence[int], *, per_item: bool) -> float:
    """Eventually consistent read units: 0.5 per 4 KB, rounded up per item (GetItem,
    BatchGetItem) or over the sum of a page (Query)."""
    if per_item:
        return 0.5 * sum(max(1, math.ceil(size / 4096)) for size in sizes)
    return 0.5 * max(1, math.ceil(sum(sizes) / 4096))


class ReadTally:
    """The read units of the pass's Query pages and BatchGetItem calls, estimated from item
    sizes, beside what moto reports (it is asked with ReturnConsumedCapacity=TOTAL). The hooks
    only keep the answers: sizes are counted after the pass, outside its time."""

    def __init__(self, full_sizes: dict[str, int]) -> None:
        self.full_sizes = full_sizes  # task_guid -> the stored item's size (billing counts it)
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.query = 0.0
        self.batch_get = 0.0
        self.moto = 0.0
        self.missing = 0

    @property
    def total(self) -> float:
        return self.query + self.batch_get

    def _hooks(self) -> list[tuple[str, Callable[..., None]]]:
        return [
            ("provide-client-params.dynamodb.Query", self._ask),
            ("provide-client-params.dynamodb.BatchGetItem", self._ask),
            ("after-call.dynamodb.Query", self._keep),
            ("after-call.dynamodb.BatchGetItem", self._keep),
        ]

    def attach(self, client: Any) -> None:
        for event, hook in self._hooks():
            client.meta.events.register(event, hook)

    def detach(self, client: Any) -> None:
        for event, hook in self._hooks():
            client.meta.events.unregister(event, hook)

    def _ask(self, params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _keep(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.answers.append((model.name, parsed))

    def count(self) -> None:
        """The read units of the answers kept so far."""
        for operation, parsed in self.answers:
            if operation == "Query":
                self._query(parsed)
            else:
                self._batch_get(parsed)
        self.answers.clear()

    def _moto(self, parsed: dict[str, Any]) -> None:
        consumed = parsed.get("ConsumedCapacity") or []
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            self.moto += float(entry.get("CapacityUnits") or 0)

    def _query(self, parsed: dict[str, Any]) -> None:
        self._moto(parsed)
        self.query += read_units([item_size(i) for i in parsed.get("Items", [])], per_item=False)

    def _batch_get(self, parsed: dict[str, Any]) -> None:
        self._moto(parsed)
        sizes = []
        for items in (parsed.get("Responses") or {}).values():
            for item in items:
                size = self.full_sizes.get(item.get("task_guid", {}).get("S", ""))
                if size is None:
                    self.missing += 1
                else:
                    sizes.append(size)
        self.batch_get += read_units(sizes, per_item=True)


# --- the floor ---------------------------------------------------------------------------


def bare_reads(client: Any, table: str, attributes: Sequence[str]) -> dict[str, int]:
    """The open tasks read as any pass must: every page of every shard of the open index's
    keys, then those keys in hundreds, raw boto3 with the pass's projection; the counts of
    what it read."""
    keys, pages = [], 0
    for partition in open_partitions():
        query: dict[str, Any] = {
            "TableName": table,
            "IndexName": "GSI3",
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "GSI3PK"},
            "ExpressionAttributeValues": {":pk": {"S": partition}},
        }
        while True:
            answer = client.query(**query)
            pages += 1
            keys.extend({"PK": i["PK"], "SK": i["SK"]} for i in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    names = {f"#p{i}": name for i, name in enumerate(attributes)}
    projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    read, batches = 0, 0
    for start in range(0, len(keys), BATCH_GET):
        pending: dict[str, Any] = {table: {**projection, "Keys": keys[start : start + BATCH_GET]}}
        while pending:
            answer = client.batch_get_item(RequestItems=pending)
            batches += 1
            read += len(answer.get("Responses", {}).get(table, []))
            pending = answer.get("UnprocessedKeys") or {}
    return {"query_pages": pages, "keys": len(keys), "batch_gets": batches, "items": read}


# --- the measurement -----------------------------------------------------------------------


def minimum_requests(open_tasks: int, query_pages: int, expected: Counter) -> int:
    """The fewest requests a pass over these tasks can make: the index pages and BatchGetItem
    calls of the floor, one conditional write (or delete) per task that changes, and the
    queue sends in tens (dispatches; callbacks of kicked tasks: a demoted task's callback is
    queued by the stream, not by the pass), and at most one counters ADD per function whose
    tasks the pass finishes (FunctionMetrics.gathered)."""
    writes = sum(expected[s] for s in (Step.EXPIRE, Step.CELL_LOST, Step.DEMOTE, Step.DELETE))
    writes += min(len(FUNCTIONS), expected[Step.EXPIRE] + expected[Step.CELL_LOST])
    callbacks = expected[Step.KICK]
    return (
        query_pages
        + math.ceil(open_tasks / BATCH_GET)
        + writes
        + math.ceil(expected[Step.DISPATCH] / SEND_BATCH)
        + math.ceil(callbacks / SEND_BATCH)
    )


REPORT_FIELDS = {
    Step.EXPIRE: "expired",
    Step.DISPATCH: "dispatched",
    Step.CELL_LOST: "cell_lost",
    Step.DEMOTE: "demoted",
    Step.DELETE: "deleted",
    Step.KICK: "kicked",
}


def mismatches(expected: Counter, report: dict[str, Any], open_tasks: int) -> list[str]:
    """What the pass's report says differently from what the mix was built to need."""
    wrong = [
        f"{field} {report.get(field, 0)} (expected {expected[step]})"
        for step, field in REPORT_FIELDS.items()
        if report.get(field, 0) != expected[step]
    ]
    if report.get("open") != open_tasks:
        wrong.append(f"open {report.get('open')} (expected {open_tasks})")
    for field in ("lost_races", "dispatch_failures", "kick_failures"):
        if report.get(field):
            wrong.append(f"{field} {report[field]} (expected 0)")
    if report.get("truncated"):
        wrong.append("truncated (expected every open task in one pass)")
    return wrong


@dataclass
class _Timed:
    seconds: float = 0.0


def _timing(store: TaskStore, timed: _Timed) -> None:
    """Time the pass's read phase: the store's open_tasks, wrapped on this instance only."""
    read = store.open_tasks

    def open_tasks(**kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return read(**kwargs)
        finally:
            timed.seconds += time.perf_counter() - start

    store.open_tasks = open_tasks  # type: ignore[method-assign]


def _per_thousand(value: float, tasks: int) -> float:
    return round(value * 1000 / tasks, 1)


def measure(quick: bool = False) -> Section:
    from taskfn import aws, wiring
    from taskfn.local.atomic import make_dynamodb_writes_atomic
    from taskfn.services.converger import Converger, step_for
    from taskfn.settings import get_settings

    count = QUICK_TASKS if quick else TASKS
    make_dynamodb_writes_atomic()  # as the local stack runs moto
    with moto_backend():
        settings = get_settings()
        table = wiring.table()
        client = table.client
        now = time.time_ns()
        mix = task_mix(count, now, settings)
        items = [record_item(task) for _, task in mix]
        full_sizes = {item["task_guid"]: item_size(to_item(item)) for item in items}
        began = time.perf_counter()
        write_requests = put_items(client, table.name, items)
        setup_s = time.perf_counter() - began
        expected: Counter = Counter(kind.step for kind, _ in mix if kind.step is not None)
        off_mix = sum(1 for kind, task in mix if step_for(task, now, settings) != kind.step)

        # Warm both request shapes (botocore loads their models on first use), then the floor.
        client.query(
            TableName=table.name, IndexName="GSI3", KeyConditionExpression="GSI3PK = :p",
            ExpressionAttributeValues={":p": {"S": open_partitions()[0]}}, Limit=1,
        )
        client.batch_get_item(RequestItems={table.name: {"Keys": [
            {"PK": {"S": items[0]["PK"]}, "SK": {"S": "TASK"}}]}})
        began = time.perf_counter()
        floor = bare_reads(client, table.name, READ_ATTRIBUTES)
        floor_s = time.perf_counter() - began

        counter = RequestCounter()
        for service in ("dynamodb", "sqs"):
            counter.attach(aws.client(service))
        store, read_phase = wiring.tasks(), _Timed()
        _timing(store, read_phase)
        converger = Converger(store, wiring.task_queue(), settings, now=lambda: now,
                              callbacks=wiring.callback_queue())
        tally = ReadTally(full_sizes)
        tally.attach(client)
        with counter.counting() as calls:
            began = time.perf_counter()
            report = converger.run().as_dict()
            pass_s = time.perf_counter() - began
        tally.detach(client)
        tally.count()

    requests = dict(sorted(calls.items()))
    total = sum(requests.values())
    scans = sum(n for op, n in requests.items() if op.split(".", 1)[1] == "Scan")
    minimum = minimum_requests(count, floor["query_pages"], expected)
    wrong = mismatches(expected, report, count)
    writes_s = pass_s - read_phase.seconds
    by_op = ", ".join(f"{n:,} {op.split('.', 1)[1]}" for op, n in requests.items())
    floor_name = (
        f"bare reads of the same {count:,} open tasks: {floor['query_pages']} Query pages of "
        f"the open index (keys) + {floor['batch_gets']} BatchGetItem of {BATCH_GET} with the "
        "pass's projection, raw boto3, not parsed into records"
    )
    figures = [
        Figure(
            name=f"one pass over {count:,} open tasks, wall time",
            value=round(pass_s, 3),
            unit="s",
            baseline=round(floor_s, 3),
            baseline_name=floor_name,
            note=(
                f"read phase {read_phase.seconds:.2f} s, then {writes_s:.2f} s deciding and "
                f"writing ({sum(expected[s] for s in REPORT_FIELDS):,} tasks changed or sent): "
                "the floor covers only the reads, so no target on the whole pass. "
                f"{pass_s / count * 1000 * 1000:,.0f} ms per 1,000 open tasks."
            ),
        ),
        Figure(
            name="the pass's read phase (open_tasks)",
            value=round(read_phase.seconds, 3),
            unit="s",
            baseline=round(floor_s, 3),
            baseline_name=floor_name,
            target=f"ratio <= {READ_PHASE_TARGET:g}",
            met=read_phase.seconds <= READ_PHASE_TARGET * floor_s,
            note="the same requests as the floor, plus parsing every item into a TaskRecord",
        ),
        Figure(
            name="AWS requests per 1,000 open tasks",
            value=_per_thousand(total, count),
            unit="requests",
            baseline=_per_thousand(minimum, count),
            baseline_name=(
                "the minimum: the floor's reads, one conditional write per task that changes, "
                "queue sends in tens"
            ),
            target="= minimum",
            met=total <= minimum,
            note=(
                f"{total:,} requests in all: {by_op}"
                + (
                    f". Above the minimum: {requests.get('sqs.SendMessage')} single "
                    "SendMessage calls where batches of ten would do"
                    if total > minimum and requests.get("sqs.SendMessage")
                    else ""
                )
            ),
        ),
        Figure(
            name="Scan requests in the pass",
            value=scans,
            unit="requests",
            target="= 0",
            met=scans == 0,
            note="" if scans == 0 else "A SCAN HAPPENED: the pass must read the open index only",
        ),
        Figure(
            name="read capacity per 1,000 open tasks (estimate)",
            value=round(tally.total * 1000 / count, 1),
            unit="RCU",
            note=(
                "computed from item sizes by DynamoDB's rules (eventually consistent: 0.5 "
                "per 4 KB, per item for BatchGetItem, whose projection does not lower the "
                "bill; over each page for the keys-only Query). Not moto's ConsumedCapacity: "
                f"it reports a fixed placeholder ({tally.moto:,.0f} for this pass: 1 per "
                "Query, 1 per key read)"
            ),
        ),
    ]
    summary = (
        f"One pass over {count:,} open tasks took {pass_s:.2f} s ({read_phase.seconds:.2f} s "
        f"reading) against {floor_s:.2f} s for the bare reads, with {total:,} AWS requests "
        f"({_per_thousand(total, count)} per 1,000 open tasks) and no Scan."
    )
    if scans:
        summary = (
            f"**A SCAN HAPPENED: {scans} Scan request(s) in one convergence pass.** " + summary
        ).replace(" and no Scan.", ".")
    if wrong:
        summary += " **The pass did not do what the mix needs: " + "; ".join(wrong) + ".**"
    if off_mix:
        summary += f" ({off_mix} tasks of the mix were not of their intended step.)"
    details = {
        "open_tasks": count,
        "scans": scans,
        "requests": requests,
        "requests_total": total,
        "requests_minimum": minimum,
        "report": report,
        "expected": {REPORT_FIELDS[step]: expected[step] for step in REPORT_FIELDS},
        "report_mismatches": wrong,
        "mix": dict(Counter(kind.name for kind, _ in mix)),
        "mix_off_intended_step": off_mix,
        "pass_s": round(pass_s, 3),
        "read_phase_s": round(read_phase.seconds, 3),
        "decide_and_write_s": round(writes_s, 3),
        "floor_s": round(floor_s, 3),
        "floor": floor,
        "read_capacity": {
            "method": "estimate from item sizes (moto's ConsumedCapacity is a placeholder)",
            "query_rcu": tally.query,
            "batch_get_rcu": tally.batch_get,
            "total_rcu": tally.total,
            "moto_reported": tally.moto,
            "items_without_size": tally.missing,
            "mean_item_bytes": round(sum(full_sizes.values()) / len(full_sizes)),
        },
        "setup": {"items": count, "batch_write_requests": write_requests,
                  "seconds": round(setup_s, 2)},
        "settings": {
            name: getattr(settings, name)
            for name in ("dispatch_grace_s", "pending_expiry_s", "cell_timeout_s",
                         "kick_duration_s", "completed_expiry_s", "converger_max_tasks")
        },
    }
    return Section(
        key="convergence",
        title="One convergence pass over 10,000 tasks",
        figures=figures,
        details=details,
        summary=summary,
    )


if __name__ == "__main__":
    print(json.dumps(measure(quick="--quick" in sys.argv).as_dict(), indent=2))
