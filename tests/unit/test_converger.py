"""Convergence decided without AWS: which step applies to which task at which time, the
conditional transitions it writes, the settings' guard, and the local schedule runner."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from taskfn import lifecycle
from taskfn.errors import InvalidStateTransition
from taskfn.local.schedules import Schedules, build_schedule_event
from taskfn.local.template import ScheduleSource, load_template, parse_rate
from taskfn.models import TaskRecord
from taskfn.services.converger import SECOND_NS, Step, step_for
from taskfn.settings import Settings

S = SECOND_NS
SETTINGS = Settings()  # expiry 1800 s, grace 30 s, heartbeat 30 s, cell timeout 90 s
T0 = 1_000_000 * S


def task(state: str = "Pending", *, created: int = T0, updated: int | None = None,
         tags: tuple[str, ...] = (), cell: str = "") -> TaskRecord:
    if state == "Running" and not cell:
        cell = "executor-1"
    return TaskRecord(task_guid="t", owner="o", state=state, created_at=created,
                      updated_at=created if updated is None else updated,
                      placement_tags=list(tags), cell_id=cell)


@pytest.mark.parametrize(("record", "age_s", "expected"), [
    (task(), 0, None),                                   # just created: the queue has it
    (task(), 30, None),                                  # grace is "longer than"
    (task(), 31, Step.DISPATCH),
    (task(tags=("gpu",)), 31, None),                     # for an external cell
    (task(), 961, Step.DISPATCH),                        # its wait just crossed 30·2^5
    (task(), 1800, None),                                # still queued: not every pass
    (task(), 1801, Step.EXPIRE),
    (task(tags=("gpu",)), 1801, Step.EXPIRE),            # tags do not save it from expiry
    (task(updated=T0 + 100 * S), 1801, Step.EXPIRE),     # expiry counts from creation
    (task(updated=T0 + 1780 * S), 1800, None),           # rejected lately: grace again
    (task("Running"), 90, None),
    (task("Running"), 91, Step.CELL_LOST),
    (task("Running", updated=T0 + 60 * S), 91, None),    # heartbeated a minute in
    (task("Running"), 5000, Step.CELL_LOST),             # not expired: it did start
    (task("Running", cell="gpu-cell-1"), 91, Step.CELL_LOST),  # external cells heartbeat too
    (task("Running", cell="gpu-cell-1", updated=T0 + 60 * S), 91, None),
    (task("Completed"), 5000, None),
    (task("Resolving"), 5000, None),
])
def test_step_for(record, age_s, expected):
    assert step_for(record, T0 + age_s * S, SETTINGS) == expected


def test_steps_follow_the_settings():
    quick = Settings(pending_expiry_s=10, dispatch_grace_s=0, cell_heartbeat_s=1,
                     cell_timeout_s=2)
    assert step_for(task(), T0 + 1, quick) == Step.DISPATCH
    assert step_for(task(), T0 + 11 * S, quick) == Step.EXPIRE
    assert step_for(task("Running"), T0 + 3 * S, quick) == Step.CELL_LOST


def test_the_cell_timeout_must_exceed_the_heartbeat():
    with pytest.raises(ValidationError):
        Settings(cell_heartbeat_s=90, cell_timeout_s=90)


def test_convergence_transitions_in_memory():
    pending, running = task().model_dump(), task("Running").model_dump() | {"cell_id": "c"}
    expired = lifecycle.apply(lifecycle.expire(5), pending).task
    assert (expired["state"], expired["failed"]) == ("Completed", True)
    assert expired["failure_reason"] == "not started within time limit"
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.expire(5), running)  # started meanwhile
    lost = lifecycle.apply(lifecycle.cell_lost(T0, 5), running).task
    assert lost["failure_reason"] == "cell disappeared before completion"
    assert lost["cell_id"] == ""
    beat = lifecycle.apply(lifecycle.heartbeat("c", T0 + 7), running).task
    assert (beat["state"], beat["updated_at"]) == ("Running", T0 + 7)
    with pytest.raises(InvalidStateTransition):
        lifecycle.apply(lifecycle.cell_lost(T0, 5), beat)  # it heartbeated since


def test_rate_expressions():
    assert parse_rate("rate(1 minute)") == 60
    assert parse_rate("rate(5 minutes)") == 300
    assert parse_rate("rate(2 hours)") == 7200
    assert parse_rate("rate(1 day)") == 86400
    for bad in ("cron(0 * * * ? *)", "rate(0 minutes)", "rate(x minutes)", "rate(1 week)"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_the_template_schedules_the_converger_every_minute():
    assert load_template().schedules == [ScheduleSource("ConvergerFunction", 60.0)]


class FakeInvoker:
    def __init__(self, fail_first: bool = False):
        self.calls: list[tuple[str, dict]] = []
        self.fail_first = fail_first
        self.fired = threading.Event()

    def invoke(self, function_id: str, event: dict) -> None:
        self.calls.append((function_id, event))
        if len(self.calls) >= 3:
            self.fired.set()
        if self.fail_first and len(self.calls) == 1:
            raise RuntimeError("boom")


def test_a_schedule_fires_every_period_even_after_a_failure():
    invoker = FakeInvoker(fail_first=True)
    schedules = Schedules([ScheduleSource("F", 0.02)], invoker)
    schedules.start()
    try:
        assert invoker.fired.wait(5)
    finally:
        schedules.stop()
    count = len(invoker.calls)
    assert {function_id for function_id, _ in invoker.calls} == {"F"}
    assert invoker.calls[0][1]["detail-type"] == "Scheduled Event"
    schedules.stop_event.wait(0.1)
    assert len(invoker.calls) == count  # stopped means stopped


def test_the_first_run_waits_one_period():
    invoker = FakeInvoker()
    schedules = Schedules([ScheduleSource("F", 60)], invoker)
    schedules.start()
    schedules.stop()
    assert invoker.calls == []
    assert build_schedule_event("F")["source"] == "aws.events"


def test_a_retried_task_backing_off_is_neither_dispatched_nor_expired_from_its_creation():
    old = task(created=T0 - 2000 * S).model_copy(update={"retry_at": T0 + 4 * S,
                                                         "updated_at": T0 - 60 * S})
    assert step_for(old, T0, SETTINGS) is None  # backing off: not dispatched
    assert step_for(old, T0 + 5 * S, SETTINGS) is Step.DISPATCH  # and not expired either
    assert step_for(old, T0 + 1805 * S, SETTINGS) is Step.EXPIRE  # expiry from its retry_at


def test_a_task_waiting_in_a_long_queue_is_sent_again_at_doubling_waits_not_every_pass():
    from taskfn.services.converger import due_for_dispatch

    passes = [1 + 60 * n for n in range(30)]  # a pass a minute, for half an hour
    sent = [waited for waited in passes if due_for_dispatch(waited, 30, 60)]
    assert sent == [61, 121, 241, 481, 961]  # when the wait crossed 30 (and 60), 120 … 960
    assert due_for_dispatch(31, 30, 60)  # lost between write and send: the first pass after
    assert not due_for_dispatch(30, 30, 60)  # the grace is "longer than"
    assert all(due_for_dispatch(w, 0, 60) for w in (1, 500))  # no grace: every pass


def test_the_converger_period_setting_is_the_template_s_schedule():
    template = load_template()
    (schedule,) = [s for s in template.schedules if s.function_id == "ConvergerFunction"]
    assert schedule.period_s == Settings().converger_period_s


def cell_api(state: str, *, completed: int = T0, updated: int | None = None,
             url: str = "", marked: bool = False) -> TaskRecord:
    """A finished Cell API task: known by its definition, or (read with a projection that
    leaves the definition out) by the store's mark."""
    return TaskRecord(task_guid="c", owner="o", state=state, created_at=completed - S,
                      updated_at=completed if updated is None else updated,
                      first_completed_at=completed, completion_callback_url=url,
                      task_definition=None if marked else {}, cell_api=marked)


@pytest.mark.parametrize(("record", "age_s", "expected"), [
    (cell_api("Completed"), 120, None),                  # "longer than"
    (cell_api("Completed"), 121, Step.DELETE),           # BBS's completed expiry
    (cell_api("Completed", marked=True), 121, Step.DELETE),
    (cell_api("Completed"), 60, None),                   # kicked, but no callback to send
    (cell_api("Completed", url="http://x"), 60, Step.KICK),
    (cell_api("Resolving"), 31, Step.DEMOTE),            # resolved by hand, never deleted
    (cell_api("Resolving"), 29, None),
    (task("Completed"), 10**6, None),                    # GreenCloud's: never deleted
])
def test_step_for_finished_cell_api_tasks(record, age_s, expected):
    assert step_for(record, T0 + age_s * S, SETTINGS) == expected


@pytest.mark.parametrize(("age_s", "expected"), [
    (91, None),          # no heartbeat from a container: silence is not a lost cell
    (60 + 120 + 90, None),  # its timeout, the grace for its event and the cell timeout
    (60 + 120 + 91, Step.CELL_LOST),  # its end was never told: failed (or retried)
])
def test_a_job_s_container_is_lost_only_past_its_timeout_and_grace(age_s, expected):
    record = TaskRecord(task_guid="t", owner="o", state="Running", created_at=T0,
                        updated_at=T0, started_at=T0, cell_id="container:e-1", timeout=60,
                        lang="container")
    assert step_for(record, T0 + age_s * S, SETTINGS) == expected
