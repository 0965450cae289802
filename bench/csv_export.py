"""The CSV export of 100,000 tasks of one function, against the floor of any export: reading
them; and its memory, against an export of a tenth of the rows.

The tasks are finished GreenCloud tasks written straight into moto with BatchWriteItem, in the
shape TaskStore writes (`TaskStore.item_for`): small JSON results inline, one in 200 kept in
S3. moto runs in a process of its own, so that this process is the export's alone: its wall
time, its CPU time (what a Lambda's vCPU would spend) and its traced memory.

The floor is the bare cost of reading every row: the same paged Query of the function's GSI2
partition (keys, oldest first, the export's page size) and BatchGetItem of those keys in
hundreds with the export's projection, one request at a time, raw boto3, nothing parsed into
records, rendered or uploaded. The export adds its checks, rendering, the S3 bodies and the
multipart upload, and reads with a few BatchGetItem requests in flight.

On moto a Query page costs time in proportion to the whole table (moto walks every item for
each page of an index), and BatchGetItem about 2 ms an item: wall times here are moto's. The
figure that carries over to AWS is the CPU time of this process, with the request counts:
an estimate of AWS's time for them is in the details.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bench.aws_requests import RequestCounter
from bench.common import Figure, Section

TASKS, QUICK_TASKS = 100_000, 10_000
SMALLER = 10  # the memory comparison: the export of TASKS / SMALLER rows
SMALLEST = 2_000  # below this an export never has its full window of batches in flight
IN_S3 = 200  # one task in this many has its body in S3
MEMORY_PART_BYTES = 256 * 1024  # parts in the memory runs (moto's part minimum lowered)
WALL_TARGET = 1.2  # the export over the floor, on moto
MEMORY_TARGET = 2.0  # the peak of 10x the rows over the smaller export's peak
# Latencies assumed for the AWS estimate (same region, warm connections).
AWS_QUERY_S, AWS_BATCH_GET_S, AWS_S3_S = 0.015, 0.025, 0.05
FID, SMALL_FID, WARM_FID = "6560f1a0aaaaaaaaaaaaaa01", "6560f1a0aaaaaaaaaaaaaa02", (
    "6560f1a0aaaaaaaaaaaaaa03")

SERVER = r"""
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()  # until the parent closes it
server.stop()
"""


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a child process (S3's part minimum lowered for the memory runs),
    template.yaml's resources in it, and this process pointed at it."""
    import logging

    from taskfn import wiring
    from taskfn.local import environment
    from taskfn.local.template import load_template

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MEMORY_PART_BYTES)}
    child = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env)
    try:
        endpoint = child.stdout.readline().strip()
        assert endpoint.startswith("http://"), endpoint
        with environment.patched(environment.pointed_at(endpoint)):
            provisioned = environment.provisioned_environment(load_template())
            with environment.patched(provisioned):
                wiring.reset()
                yield endpoint
    finally:
        wiring.reset()
        child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def seed(function_id: str, count: int, now: int) -> dict[str, Any]:
    """`count` finished tasks of alice's function, a second apart, ending a minute ago."""
    from bench.convergence import put_items
    from taskfn import wiring
    from taskfn.lifecycle import SECOND_NS, State
    from taskfn.models import FunctionRecord, TaskRecord, expiry
    from taskfn.settings import get_settings
    from taskfn.stores.blobs import task_key
    from taskfn.stores.tasks import TaskStore

    wiring.functions().put_new(FunctionRecord(id=function_id, owner="alice", name="bench",
                                              created_at=now))
    retention = get_settings().task_retention_days
    blobs, items, in_s3 = wiring.blobs(), [], 0
    first = now - (count + 60) * SECOND_NS
    for number in range(count):
        created = first + number * SECOND_NS
        task_id = f"{function_id[:6]}{function_id[-2:]}{number:016x}"  # unique per function
        body = json.dumps({"n": number, "ok": True, "text": "lorem ipsum dolor"})
        fields: dict[str, Any] = {"response_body": body}
        if number % IN_S3 == IN_S3 - 1:
            key = task_key(task_id, "result")
            blobs.put(key, (body * 40).encode(), "application/json")
            fields, in_s3 = {"response_key": key}, in_s3 + 1
        task = TaskRecord(
            task_guid=task_id, owner="alice", function_id=function_id, created_at=created,
            updated_at=created + 2 * SECOND_NS, expires_at=expiry(created, retention),
            state=State.COMPLETED, started_at=created + SECOND_NS,
            first_completed_at=created + 2 * SECOND_NS, node="executor-bench",
            cell_id="", response_status=200,
            response_headers={"Content-Type": "application/json"}, progress=100,
            input={"body": {"n": number}, "query": {}}, **fields)
        items.append(TaskStore.item_for(task))
    table = wiring.table()
    began = time.perf_counter()
    requests = put_items(table.client, table.name, items)
    return {"tasks": count, "in_s3": in_s3, "batch_write_requests": requests,
            "seconds": round(time.perf_counter() - began, 1)}


def floor_read(function_id: str, page_keys: int) -> dict[str, Any]:
    """Every row's item read as any export must: the function's GSI2 keys a page at a time,
    then BatchGetItem of them in hundreds with the export's projection, raw boto3."""
    from taskfn import wiring
    from taskfn.services.exports import READ_ATTRIBUTES
    from taskfn.stores.tasks import function_partition

    table = wiring.table()
    client = table.client
    query: dict[str, Any] = {
        "TableName": table.name, "IndexName": "GSI2",
        "KeyConditionExpression": "#pk = :pk", "ExpressionAttributeNames": {"#pk": "GSI2PK"},
        "ExpressionAttributeValues": {":pk": {"S": function_partition(function_id)}},
        "ScanIndexForward": True, "Limit": page_keys,
    }
    names = {f"#p{i}": name for i, name in enumerate(READ_ATTRIBUTES)}
    projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    pages = batches = items = 0
    while True:
        answer = client.query(**query)
        pages += 1
        keys = [{"PK": i["PK"], "SK": i["SK"]} for i in answer.get("Items", [])]
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {table.name: {**projection, "Keys": keys[start:start + 100]}}
            while pending:
                got = client.batch_get_item(RequestItems=pending)
                batches += 1
                items += len(got.get("Responses", {}).get(table.name, []))
                pending = got.get("UnprocessedKeys") or {}
        if "LastEvaluatedKey" not in answer:
            return {"query_pages": pages, "batch_gets": batches, "items": items}
        query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def exporter(**options: Any) -> Any:
    from taskfn import wiring
    from taskfn.services.exports import ExportService
    from taskfn.settings import get_settings

    return ExportService(wiring.table(), wiring.functions(), wiring.blobs(), get_settings(),
                         **options)


def memory_exporter() -> Any:
    """Small parts, so that the part buffer does not hide what grows (if anything does)."""
    return exporter(inline_max_bytes=MEMORY_PART_BYTES // 2, part_bytes=MEMORY_PART_BYTES)


def run_export(service: Any, function_id: str) -> Any:
    from taskfn.adapters import greencloud
    from taskfn.models import Caller, Scope
    from taskfn.services.exports import ExportFilter

    return service.export(Caller("alice", Scope.USER), function_id, ExportFilter(),
                          greencloud.csv_renderer(plain=False))


def timed(call: Any) -> tuple[Any, float, float]:
    """What `call` returns, its wall time and this process's CPU time (every thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def peak_memory(service: Any, function_id: str) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        export = run_export(service, function_id)
        return tracemalloc.get_traced_memory()[1], export
    finally:
        tracemalloc.stop()


def aws_estimate(requests: Counter, cpu_s: float, readers: int, body_readers: int) -> float:
    """Seconds AWS would take for these requests at the assumed latencies: the Query pages,
    BatchGetItem `readers` at a time and the bodies' GETs `body_readers` at a time all run
    side by side, the upload's requests one at a time; or the CPU time, when that is longer
    (then the reading waits for the parsing and rendering)."""
    reads = max(requests["dynamodb.Query"] * AWS_QUERY_S,
                requests["dynamodb.BatchGetItem"] * AWS_BATCH_GET_S / readers,
                requests["s3.GetObject"] * AWS_S3_S / body_readers)
    upload = sum(n for op, n in requests.items()
                 if op.startswith("s3.") and op != "s3.GetObject") * AWS_S3_S
    return max(reads + upload, cpu_s)


def measure(quick: bool = False) -> Section:
    from taskfn import aws
    from taskfn.models import now_ns
    from taskfn.services.exports import BATCH_READERS, BODY_READERS, PAGE_KEYS

    count = QUICK_TASKS if quick else TASKS
    fewer = max(count // SMALLER, SMALLEST)
    with moto_process():
        now = now_ns()
        setup = {"large": seed(FID, count, now), "small": seed(SMALL_FID, fewer, now),
                 "warm": seed(WARM_FID, 300, now)}
        # Every path once (clients, botocore's models, a multipart upload), then the floor.
        run_export(exporter(inline_max_bytes=1024, part_bytes=MEMORY_PART_BYTES), WARM_FID)
        floor_read(WARM_FID, PAGE_KEYS)
        floor, floor_s, floor_cpu = timed(lambda: floor_read(FID, PAGE_KEYS))

        counter = RequestCounter()
        for service_name in ("dynamodb", "s3"):
            counter.attach(aws.client(service_name))
        with counter.counting() as calls:
            export, export_s, export_cpu = timed(lambda: run_export(exporter(), FID))
        requests = Counter(calls)

        small_peak, small = peak_memory(memory_exporter(), SMALL_FID)
        large_peak, large = peak_memory(memory_exporter(), FID)

    assert export.rows == count == floor["items"], (export.rows, floor)
    assert (small.rows, large.rows) == (fewer, count)
    scans = sum(n for op, n in requests.items() if op.endswith(".Scan"))
    total = sum(requests.values())
    estimate = aws_estimate(requests, export_cpu, BATCH_READERS, BODY_READERS)
    by_op = ", ".join(f"{n:,} {op}" for op, n in sorted(requests.items()))
    floor_name = (f"bare reads of the same {count:,} rows: {floor['query_pages']} Query pages "
                  f"of GSI2 (keys) + {floor['batch_gets']:,} BatchGetItem of 100 with the "
                  "export's projection, one at a time, raw boto3, not parsed")
    mib = 1024 * 1024
    figures = [
        Figure(
            name=f"export of {count:,} tasks, wall time on moto", value=round(export_s, 2),
            unit="s", baseline=round(floor_s, 2), baseline_name=floor_name,
            target=f"ratio <= {WALL_TARGET:g}", met=export_s <= WALL_TARGET * floor_s,
            note=(f"{export.size / mib:.1f} MiB of CSV uploaded in parts ({by_op}); moto's "
                  "Query walks the whole table for each page, so both are mostly moto's time"),
        ),
        Figure(
            name=f"export of {count:,} tasks, CPU time of the exporting process",
            value=round(export_cpu, 2), unit="s", baseline=round(floor_cpu, 2),
            baseline_name="the floor's CPU time (requests sent and answers parsed by boto3)",
            note=(f"{export_cpu / count * 1e6:.0f} µs a row: parsing, checking, rendering, "
                  "uploading; what a Lambda with one vCPU (1,769 MB) spends"),
        ),
        Figure(
            name=f"export of {count:,} tasks, estimated time on AWS", value=round(estimate, 1),
            unit="s", target="< 29 s (API Gateway's 30 s)", met=estimate < 29,
            note=(f"the export's requests at {AWS_QUERY_S * 1000:g} ms a Query page, "
                  f"{AWS_BATCH_GET_S * 1000:g} ms a BatchGetItem ({BATCH_READERS} in flight), "
                  f"{AWS_S3_S * 1000:g} ms an S3 request ({BODY_READERS} body GETs in "
                  "flight), or its CPU time when longer: an estimate, not a measurement"),
        ),
        Figure(
            name=f"peak traced memory, {count:,} rows", value=round(large_peak / mib, 2),
            unit="MiB", baseline=round(small_peak / mib, 2),
            baseline_name=f"the same export of {fewer:,} rows",
            target=f"ratio <= {MEMORY_TARGET:g}", met=large_peak <= MEMORY_TARGET * small_peak,
            note=(f"parts of {MEMORY_PART_BYTES // 1024} KiB (moto's part minimum lowered); "
                  f"{large.size / mib:.1f} MiB against {small.size / mib:.1f} MiB of CSV"),
        ),
        Figure(name="Scan requests in the export", value=scans, unit="requests", target="= 0",
               met=scans == 0),
    ]
    summary = (
        f"{count:,} tasks exported in {export_s:.1f} s on moto against {floor_s:.1f} s for "
        f"the bare reads ({export_cpu:.1f} s of CPU; about {estimate:.0f} s estimated on AWS), "
        f"{total:,} requests and no Scan; peak memory {large_peak / mib:.1f} MiB against "
        f"{small_peak / mib:.1f} MiB for {fewer:,} rows."
    )
    details = {
        "rows": count, "csv_bytes": export.size, "requests": dict(sorted(requests.items())),
        "floor": floor, "floor_s": round(floor_s, 3), "floor_cpu_s": round(floor_cpu, 3),
        "export_s": round(export_s, 3), "export_cpu_s": round(export_cpu, 3),
        "aws_estimate_s": round(estimate, 2),
        "memory": {"large_peak_bytes": large_peak, "small_peak_bytes": small_peak,
                   "large_csv_bytes": large.size, "small_csv_bytes": small.size,
                   "part_bytes": MEMORY_PART_BYTES},
        "setup": setup,
    }
    return Section(key="csv_export", title="CSV export of 100,000 tasks", figures=figures,
                   details=details, summary=summary)


if __name__ == "__main__":
    print(json.dumps(measure(quick="--quick" in sys.argv).as_dict(), indent=2))
