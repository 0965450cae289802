"""Live logs: how long a printed line takes to reach a WebSocket follower (…/ws), through the
local stack. A job prints `<n> <epoch seconds>` lines at a steady pace; one thread follows
its WebSocket, another reads its CloudWatch Logs stream directly every 20 ms. The baseline is
the second: when the line is in the log stream at all (the back-end's own flush, the part
the live-log design cannot shorten); the figure is the first. What lies between is the
pump's: its 500 ms loop, the chunk write and the post.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.request
import uuid

import boto3

from bench.common import Figure, Section, median, percentile

LINES, QUICK_LINES = 40, 10
PACE_S = 0.25
POLL_S = 0.02
LOOP_S = 0.5  # the pump's (services/livelogs.py LOOP_S)
ADMIN_TOKEN = "tfn_bench-live-" + uuid.uuid4().hex


def _request(url: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url + path, method=method,
                                     data=json.dumps(body).encode() if body else None)
    request.add_header("Authorization", "Basic " + base64.b64encode(
        f"bench:{ADMIN_TOKEN}".encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _stamps(text: str, seen: dict[int, float], printed: dict[int, float], at: float) -> None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            seen.setdefault(int(parts[0]), at)
            printed.setdefault(int(parts[0]), float(parts[1]))


def measure(quick: bool = False) -> Section:
    from websockets.asyncio.client import connect

    from taskfn import wiring
    from taskfn.local.stack import LocalStack
    from taskfn.runtime.containers import log_stream
    from taskfn.settings import get_settings

    lines = QUICK_LINES if quick else LINES
    command = (f"sh -c 'sleep 1; for i in $(seq 1 {lines}); do echo $i $(date +%s.%N); "
               f"sleep {PACE_S}; done'")
    printed: dict[int, float] = {}
    over_ws: dict[int, float] = {}
    in_stream: dict[int, float] = {}
    with LocalStack(port=0, admin_token=ADMIN_TOKEN, access_log=False,
                    prefix="bench-live") as stack:
        enqueued = _request(stack.url, "POST", "/tasks/bench-live",
                            {"image": "alpine", "command": command})
        execution_id, job_id = enqueued["executionId"], enqueued["jobId"]
        deadline = time.monotonic() + 60
        while not (task := wiring.tasks().get(execution_id)) or not task.container_ref or \
                task.container_status in ("", "PROVISIONING"):
            if time.monotonic() > deadline:
                raise RuntimeError("the job did not start")
            time.sleep(0.02)
        done = threading.Event()

        def read_stream() -> None:
            logs, token = boto3.client("logs"), None
            group, stream = get_settings().job_log_group, log_stream(task.container_ref)
            while not done.is_set():
                arguments = {"logGroupName": group, "logStreamName": stream,
                             "startFromHead": True, **({"nextToken": token} if token else {})}
                try:
                    page = logs.get_log_events(**arguments)
                except logs.exceptions.ResourceNotFoundException:
                    page = {}
                now = time.time()
                for event in page.get("events") or []:
                    record = json.loads(event["message"])
                    _stamps(record.get("log", ""), in_stream, printed, now)
                token = page.get("nextForwardToken") or token
                time.sleep(POLL_S)

        reader = threading.Thread(target=read_stream, daemon=True)
        reader.start()

        async def follow() -> None:
            headers = {"Authorization": "Basic " + base64.b64encode(
                f"bench:{ADMIN_TOKEN}".encode()).decode()}
            async with connect(f"{stack.websocket.url}?task=bench-live&job={job_id}",
                               additional_headers=headers) as socket:
                async for message in socket:
                    _stamps(message, over_ws, printed, time.time())

        asyncio.run(asyncio.wait_for(follow(), 60 + lines * PACE_S * 4))
        done.set()
        reader.join(5)
    numbers = sorted(set(over_ws) & set(in_stream) & set(printed))
    if len(numbers) < lines:
        raise RuntimeError(f"{len(numbers)} of {lines} lines seen both ways")
    ws_ms = [(over_ws[n] - printed[n]) * 1000 for n in numbers]
    stream_ms = [(in_stream[n] - printed[n]) * 1000 for n in numbers]
    floor = median(stream_ms)
    value = median(ws_ms)
    limit = floor + LOOP_S * 1000
    figures = [
        Figure("printed → WebSocket follower, median", round(value, 1), "ms",
               baseline=round(floor, 1), baseline_name="printed → in the log stream, median",
               target=f"<= baseline + one pump loop ({LOOP_S * 1000:.0f} ms)",
               met=value <= limit,
               note="" if value <= limit else "the pump's copy or post is slower than its loop"),
        Figure("printed → WebSocket follower, p95", round(percentile(ws_ms, 95), 1), "ms",
               baseline=round(percentile(stream_ms, 95), 1),
               baseline_name="printed → in the log stream, p95"),
    ]
    return Section(
        key="live_logs", title="Live logs: printed to received",
        figures=figures,
        details={"lines": lines, "pace_s": PACE_S, "ws_ms": [round(v, 1) for v in ws_ms],
                 "stream_ms": [round(v, 1) for v in stream_ms]},
        summary=(f"A line printed by a job reached a WebSocket follower in {value:.0f} ms "
                 f"(median, p95 {percentile(ws_ms, 95):.0f} ms); it was in the log stream "
                 f"after {floor:.0f} ms, so the pump adds {value - floor:.0f} ms "
                 f"(its loop is {LOOP_S * 1000:.0f} ms)."))
