"""The contention benchmark's pure helpers: counting winners per task, checking stored records
against the race, and per-thread request counting. No benchmark is run here."""

from __future__ import annotations

import threading

from bench.contention import (
    ERROR,
    LOST,
    WON,
    Attempt,
    ThreadRequests,
    final_problems,
    winner_problems,
    winners_by_task,
)


def attempt(task: str, cell: str, outcome: str) -> Attempt:
    return Attempt(task, cell, outcome, 0.001, 1)


def test_winners_are_counted_per_task_and_tasks_nobody_won_are_listed():
    attempts = [
        attempt("a", "c1", WON), attempt("a", "c2", LOST),
        attempt("b", "c1", LOST), attempt("b", "c2", WON),
        attempt("c", "c1", LOST), attempt("c", "c2", ERROR),
    ]
    winners = winners_by_task(attempts, ["a", "b", "c", "d"])
    assert winners == {"a": ["c1"], "b": ["c2"], "c": [], "d": []}
    assert winner_problems(winners) == {"none": ["c", "d"], "several": []}


def test_two_winners_of_one_task_are_flagged():
    attempts = [attempt("a", "c1", WON), attempt("a", "c2", WON), attempt("b", "c1", WON)]
    winners = winners_by_task(attempts, ["a", "b"])
    assert winners["a"] == ["c1", "c2"]
    assert winner_problems(winners) == {"none": [], "several": ["a"]}


def test_exactly_one_winner_each_is_no_problem():
    winners = winners_by_task([attempt("a", "c1", WON), attempt("b", "c2", WON)], ["a", "b"])
    assert winner_problems(winners) == {"none": [], "several": []}


def test_stored_records_must_be_completed_on_the_winners_node():
    winners = {"a": ["c1"], "b": ["c2"], "c": ["c1"], "d": ["c1"]}
    records = {
        "a": {"state": "Completed", "node": "c1"},
        "b": {"state": "Completed", "node": "c1"},
        "c": {"state": "Running", "node": "c1"},
    }
    assert final_problems(winners, records) == [
        "b: node c1, winner c2", "c: Running", "d: missing",
    ]


def test_requests_are_counted_per_thread_by_operation():
    counter = ThreadRequests()
    counter._count(event_name="before-send.dynamodb.UpdateItem")
    counter._count(event_name="before-send.dynamodb.UpdateItem")
    seen: dict[str, dict[str, int]] = {}

    def other() -> None:
        counter._count(event_name="before-send.sqs.SendMessage")
        seen["other"] = dict(counter.calls())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert dict(counter.calls()) == {"UpdateItem": 2}
    assert seen["other"] == {"SendMessage": 1}
