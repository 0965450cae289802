"""Start and complete under contention: N cells race to start the same M Pending tasks.

Each cell is a thread running CellService.start on every task, oldest first (the order every
cell lists a domain in), and completing with CellService.complete each task it won: the real
conditional writes over moto, with moto's DynamoDB writes serialized as the local stack and the
tests serialize them (taskfn.local.atomic), since moto's conditional writes are not atomic and
would otherwise let two cells win one task. A lost start is one failed conditional write whose
answer carries the task as it was (ReturnValuesOnConditionCheckFailure), so losing costs no
read. The baseline, in the same run, is one cell starting and completing as many other tasks
alone.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import Figure, Section, percentile
from bench.convergence import KINDS, make_task, put_items, record_item
from taskfn.errors import InvalidStateTransition, RunningOnDifferentCell

CELLS, QUICK_CELLS = 8, 4
TASKS, QUICK_TASKS = 500, 100
LOSING_TARGET = 1.2  # a lost start is the same one request as a won one
WON, LOST, REPEAT, ERROR = "won", "lost", "repeat", "error"


@dataclass(frozen=True)
class Attempt:
    """One cell's start of one task: its outcome, how long it took, how many requests."""

    task: str
    cell: str
    outcome: str
    seconds: float
    requests: int
    error: str = ""


def winners_by_task(attempts: Iterable[Attempt], tasks: Sequence[str]) -> dict[str, list[str]]:
    """The cells that won each task (every task of `tasks` listed, winners or not)."""
    winners: dict[str, list[str]] = {task: [] for task in tasks}
    for attempt in attempts:
        if attempt.outcome == WON:
            winners.setdefault(attempt.task, []).append(attempt.cell)
    return winners


def winner_problems(winners: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Tasks that did not have exactly one winner: `none` and `several`, sorted."""
    return {
        "none": sorted(task for task, cells in winners.items() if not cells),
        "several": sorted(task for task, cells in winners.items() if len(cells) > 1),
    }


def final_problems(
    winners: Mapping[str, list[str]], records: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Tasks whose stored record disagrees with the race: not Completed, or completed on
    another node than its one winner's (a start records the cell as the task's node)."""
    wrong = []
    for task, cells in sorted(winners.items()):
        record = records.get(task)
        if record is None:
            wrong.append(f"{task}: missing")
        elif record.get("state") != "Completed":
            wrong.append(f"{task}: {record.get('state')}")
        elif len(cells) == 1 and record.get("node") != cells[0]:
            wrong.append(f"{task}: node {record.get('node')}, winner {cells[0]}")
    return wrong


class ThreadRequests:
    """Requests each thread sent (every HTTP attempt, retries included), by operation."""

    def __init__(self) -> None:
        self._local = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send", self._count)

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send", self._count)

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.calls()[event_name.split(".", 2)[2]] += 1

    def calls(self) -> Counter[str]:
        """This thread's counts so far."""
        calls = getattr(self._local, "calls", None)
        if calls is None:
            calls = self._local.calls = Counter()
        return calls


@dataclass
class Run:
    """What one phase (a race, or one cell alone) did."""

    attempts: list[Attempt] = field(default_factory=list)
    completes: int = 0
    complete_errors: list[str] = field(default_factory=list)
    complete_requests: int = 0
    seconds: float = 0.0
    by_outcome: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _cell(
    service: Any, cell: str, tasks: Sequence[str], counter: ThreadRequests, run: Run,
    lock: threading.Lock, barrier: threading.Barrier,
) -> None:
    mine: list[Attempt] = []
    by_outcome: dict[str, Counter[str]] = defaultdict(Counter)
    completes = complete_requests = 0
    complete_errors: list[str] = []
    calls = counter.calls()
    barrier.wait()
    for task in tasks:
        before = Counter(calls)
        error = ""
        start = time.perf_counter()
        try:
            outcome = WON if service.start(task, cell) else REPEAT
        except (InvalidStateTransition, RunningOnDifferentCell):
            outcome = LOST
        except Exception as failure:  # reported, not raised: the race goes on
            outcome, error = ERROR, f"{type(failure).__name__}: {failure}"
        seconds = time.perf_counter() - start
        used = calls - before
        by_outcome[outcome].update(used)
        mine.append(Attempt(task, cell, outcome, seconds, sum(used.values()), error))
        if outcome == WON:
            before = Counter(calls)
            try:
                service.complete(task, cell, failed=False, failure_reason="", result="ok")
                completes += 1
            except Exception as failure:  # reported, and the stored check shows it
                complete_errors.append(f"{task}: {type(failure).__name__}: {failure}")
            complete_requests += sum((calls - before).values())
    with lock:
        run.attempts.extend(mine)
        run.complete_errors.extend(complete_errors)
        run.completes += completes
        run.complete_requests += complete_requests
        for outcome, used in by_outcome.items():
            run.by_outcome[outcome].update(used)


def race(service: Any, cells: Sequence[str], tasks: Sequence[str], counter: ThreadRequests) -> Run:
    """Every cell starts every task of `tasks`, all cells at once; the time is the wall time
    from the common start to the last cell's end."""
    run, lock = Run(), threading.Lock()
    barrier = threading.Barrier(len(cells) + 1)
    threads = [
        threading.Thread(
            target=_cell, args=(service, cell, tasks, counter, run, lock, barrier),
            name=f"bench-{cell}",
        )
        for cell in cells
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - start
    return run


def _ms(values: list[float], p: float) -> float | None:
    return round(percentile(values, p) * 1000, 3) if values else None


def _one(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _latencies(attempts: Iterable[Attempt], outcome: str) -> list[float]:
    return [a.seconds for a in attempts if a.outcome == outcome]


def _mean_requests(attempts: list[Attempt], outcome: str) -> float | None:
    chosen = [a.requests for a in attempts if a.outcome == outcome]
    return round(sum(chosen) / len(chosen), 3) if chosen else None


def measure(quick: bool = False) -> Section:
    from bench.aws_requests import moto_backend
    from taskfn import aws, wiring
    from taskfn.local.atomic import make_dynamodb_writes_atomic
    from taskfn.services.cells import CellService
    from taskfn.settings import get_settings

    cells_n, count = (QUICK_CELLS, QUICK_TASKS) if quick else (CELLS, TASKS)
    make_dynamodb_writes_atomic()  # one winner per race, as in DynamoDB (moto alone: maybe two)
    young = next(kind for kind in KINDS if kind.shape == "young")
    with moto_backend():
        settings = get_settings()
        table = wiring.table()
        now = time.time_ns()
        made = [
            make_task(young, i, (i + 0.5) / (2 * count), now, settings) for i in range(2 * count)
        ]
        # Both sets written before either phase, so both run against the same table size.
        put_items(table.client, table.name, [record_item(task) for task in made])
        alone = [task.task_guid for task in made[:count]]
        raced = [task.task_guid for task in made[count:]]
        service = CellService.from_env()
        counter = ThreadRequests()
        client = aws.client("dynamodb")
        counter.attach(client)
        service.tasks.get(alone[0])  # warm the client: the first request of a shape loads it
        baseline = race(service, ["executor-alone"], alone, counter)
        cells = [f"executor-cell-{i}" for i in range(cells_n)]
        contended = race(service, cells, raced, counter)
        counter.detach(client)
        records = {
            item["task_guid"]: item
            for item in table.get_many(
                [(f"TASK#{task}", "TASK") for task in raced], attributes=("task_guid", "state",
                                                                          "node")
            )
        }

    attempts = contended.attempts
    outcomes = Counter(a.outcome for a in attempts)
    winners = winners_by_task(attempts, raced)
    problems = winner_problems(winners)
    stored = final_problems(winners, records)
    errors = [a.error for a in attempts if a.outcome == ERROR] + contended.complete_errors
    won, lost = _latencies(attempts, WON), _latencies(attempts, LOST)
    alone_won = _latencies(baseline.attempts, WON)
    per_task = contended.seconds / count
    per_task_alone = baseline.seconds / count
    contended_requests = sum(a.requests for a in attempts) + contended.complete_requests
    alone_requests = sum(a.requests for a in baseline.attempts) + baseline.complete_requests
    request_ratio = (contended_requests / count) / (alone_requests / count)
    won_p50, lost_p50 = _ms(won, 50), _ms(lost, 50)
    requests_won, requests_lost = _mean_requests(attempts, WON), _mean_requests(attempts, LOST)
    one_winner = not problems["none"] and not problems["several"]
    figures = [
        Figure(
            name="tasks without exactly one winner",
            value=len(problems["none"]) + len(problems["several"]),
            unit="tasks",
            target="= 0",
            met=one_winner and not stored,
            note=(
                f"{len(problems['none'])} with none, {len(problems['several'])} with more than "
                f"one; {len(stored)} stored records disagree with the race"
            ),
        ),
        Figure(
            name=f"per-task time, {cells_n} cells racing (start + complete)",
            value=round(per_task * 1000, 3),
            unit="ms",
            baseline=round(per_task_alone * 1000, 3),
            baseline_name=f"one cell alone starting and completing {count} other tasks",
            target=f"ratio <= {request_ratio:.2f} (requests per task, racing ÷ alone)",
            met=per_task <= request_ratio * per_task_alone,
            note=(
                "every cell's losing starts are requests too, all served by one moto on this "
                f"machine: {contended_requests / count:.2f} requests per task racing against "
                f"{alone_requests / count:.2f} alone. The target says losing costs no more "
                "than its own requests (no retries, no extra reads, no lock convoy)"
            ),
        ),
        Figure(
            name="losing start, p50",
            value=lost_p50 if lost_p50 is not None else 0.0,
            unit="ms",
            baseline=won_p50,
            baseline_name="a winning start's p50 in the same race",
            target=f"ratio <= {LOSING_TARGET:g}",
            met=None if not (won and lost) else lost_p50 <= LOSING_TARGET * won_p50,
            note=(
                f"p95 {_one(_ms(lost, 95))} ms losing, {_one(_ms(won, 95))} ms winning; a "
                f"start alone p50 {_one(_ms(alone_won, 50))} ms, p95 "
                f"{_one(_ms(alone_won, 95))} ms"
            ),
        ),
        Figure(
            name="requests per winning start",
            value=requests_won if requests_won is not None else 0.0,
            unit="requests",
            baseline=1,
            baseline_name="1 conditional write",
            target="= minimum",
            met=requests_won is not None and requests_won <= 1,
            note=", ".join(f"{n} {op}" for op, n in sorted(contended.by_outcome[WON].items())),
        ),
        Figure(
            name="requests per losing start",
            value=requests_lost if requests_lost is not None else 0.0,
            unit="requests",
            baseline=1,
            baseline_name=(
                "1 failed conditional write, the task as it was in its answer "
                "(ReturnValuesOnConditionCheckFailure), no read"
            ),
            target="= minimum",
            met=requests_lost is not None and requests_lost <= 1,
            note=", ".join(f"{n} {op}" for op, n in sorted(contended.by_outcome[LOST].items())),
        ),
        Figure(
            name="start throughput racing (won and lost)",
            value=round(len(attempts) / contended.seconds, 1),
            unit="starts/s",
            baseline=round(len(baseline.attempts) / baseline.seconds, 1),
            baseline_name="starts per second, one cell alone (each followed by its complete)",
            note=(
                f"{outcomes[WON]} won and {outcomes[LOST]} lost in {contended.seconds:.2f} s; "
                f"{count / contended.seconds:.1f} tasks/s started and completed racing, "
                f"{count / baseline.seconds:.1f} alone"
            ),
        ),
    ]
    summary = (
        f"{cells_n} cells raced to start the same {count} Pending tasks: "
        + (
            "every task had exactly one winner"
            if one_winner
            else f"**{len(problems['none'])} tasks had no winner and "
            f"{len(problems['several'])} more than one**"
        )
        + f", {outcomes[LOST]:,} starts lost. A lost start took {_one(lost_p50)} ms (p50) "
        f"against {_one(won_p50)} ms for a won one, {_one(requests_lost)} request against "
        f"{_one(requests_won)}; racing, "
        f"a task took {per_task * 1000:.1f} ms against {per_task_alone * 1000:.1f} ms for one "
        "cell alone."
    )
    if stored:
        summary += f" **{len(stored)} stored tasks disagree with the race, e.g. {stored[0]}.**"
    if errors:
        summary += f" **{len(errors)} starts or completes failed, e.g. {errors[0]}.**"
    if outcomes[REPEAT]:
        summary += f" {outcomes[REPEAT]} starts found the task already running on their cell."
    details = {
        "cells": cells_n,
        "tasks": count,
        "outcomes": dict(outcomes),
        "winners_per_task": dict(Counter(len(c) for c in winners.values())),
        "tasks_without_a_winner": problems["none"][:20],
        "tasks_with_several_winners": problems["several"][:20],
        "stored_records_disagreeing": stored[:20],
        "errors": errors[:20],
        "wins_per_cell": dict(sorted(Counter(a.cell for a in attempts if a.outcome == WON)
                                     .items())),
        "latency_ms": {
            "won": {"p50": won_p50, "p95": _ms(won, 95), "n": len(won)},
            "lost": {"p50": lost_p50, "p95": _ms(lost, 95), "n": len(lost)},
            "alone": {"p50": _ms(alone_won, 50), "p95": _ms(alone_won, 95), "n": len(alone_won)},
        },
        "requests": {
            "by_outcome": {k: dict(v) for k, v in contended.by_outcome.items()},
            "alone": {k: dict(v) for k, v in baseline.by_outcome.items()},
            "complete_racing": contended.complete_requests,
            "complete_alone": baseline.complete_requests,
            "per_task_racing": round(contended_requests / count, 3),
            "per_task_alone": round(alone_requests / count, 3),
        },
        "seconds": {"racing": round(contended.seconds, 3), "alone": round(baseline.seconds, 3)},
        "throughput": {
            "starts_per_s_racing": round(len(attempts) / contended.seconds, 1),
            "tasks_per_s_racing": round(count / contended.seconds, 1),
            "tasks_per_s_alone": round(count / baseline.seconds, 1),
        },
        "order": "every cell starts the tasks oldest first, as each lists the domain",
        "writes": "moto's DynamoDB writes serialized (taskfn.local.atomic), as the local stack",
    }
    return Section(
        key="contention",
        title="Start and complete under contention",
        figures=figures,
        details=details,
        summary=summary,
    )


if __name__ == "__main__":
    print(json.dumps(measure(quick="--quick" in sys.argv).as_dict(), indent=2))
