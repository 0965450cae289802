"""A job's container, pure parts (runtime/containers.py, services/containers.py): the ECS
event taskfn reads, how a STOPPED event ends an execution (the one table), the output read
back from its log stream, and the lifecycle moves of a launch."""

from __future__ import annotations

import json

import pytest

from taskfn import lifecycle
from taskfn.errors import RunningOnDifferentCell
from taskfn.lifecycle import State
from taskfn.models import TaskRecord
from taskfn.runtime.containers import (
    Launch,
    log_stream,
    parse_event,
    read_outputs,
    source_record,
    state_change,
)
from taskfn.services.containers import USER_STOPPED, ending_of

LAUNCH = Launch(task_guid="g-1", execution_id="e-1", image="alpine", argv=("echo", "hi"))
ARN = "arn:aws:ecs:us-east-1:123456789012:task/jobs/abc123"


def event(status: str = "STOPPED", **detail) -> dict:
    return state_change(cluster_arn="arn:aws:ecs:us-east-1:123456789012:cluster/jobs",
                        task_arn=ARN, launch=LAUNCH, last_status=status, region="us-east-1",
                        account="123456789012", time="2026-12-03T00:00:00Z", **detail)


def task(**fields) -> TaskRecord:
    return TaskRecord(task_guid="g-1", owner="alice", lang="container", created_at=1,
                      updated_at=1, state=State.RUNNING, execution_id="e-1", timeout=30,
                      **fields)


def test_an_event_names_its_task_execution_and_exit_code():
    parsed = parse_event(event(exit_code=3, stop_code="EssentialContainerExited"))
    assert (parsed.task_guid, parsed.execution_id, parsed.task_arn) == ("g-1", "e-1", ARN)
    assert parsed.stopped and parsed.exit_code == 3
    assert not parse_event(event("RUNNING")).stopped


@pytest.mark.parametrize("broken", [
    {}, {"detail": "x"}, {"detail": {"group": "family:other", "startedBy": "g", "taskArn": "a",
                                     "lastStatus": "STOPPED"}},  # another service's task
    {"detail": {"group": "taskfn:e", "startedBy": "", "taskArn": "a", "lastStatus": "x"}},
])
def test_an_event_of_no_taskfn_run_is_dropped(broken):
    assert parse_event(broken) is None


def test_an_exit_code_that_is_not_an_integer_is_none():
    raw = event(exit_code=0)
    raw["detail"]["containers"][0]["exitCode"] = True
    assert parse_event(raw).exit_code is None


@pytest.mark.parametrize(("fields", "exit_code", "expected"), [
    ({}, 0, ("succeeded", False, "", False)),
    ({}, 3, ("failed", True, "exit code 3", False)),
    ({"retries": 2}, 3, ("failed", True, "exit code 3", True)),
    ({"retries": 2, "retried": 2}, 3, ("failed", True, "exit code 3", False)),
    ({"retries": 2, "stop_requested": "user"}, 143, ("stopped", True, USER_STOPPED, False)),
    ({"retries": 2, "stop_requested": "timeout"}, 143,
     ("timedout", True, "Job execution timed out after 30 seconds.", False)),
    ({"stop_requested": "user"}, 0, ("stopped", True, USER_STOPPED, False)),
])
def test_how_a_stopped_event_ends_an_execution(fields, exit_code, expected):
    ending = ending_of(task(**fields), parse_event(event(exit_code=exit_code)))
    assert (ending.outcome, ending.failed, ending.reason, ending.retry) == expected


def test_a_container_that_never_ran_failed_with_ecs_s_reason_and_is_not_retried():
    ending = ending_of(task(retries=3), parse_event(event(
        stop_code="TaskFailedToStart", stopped_reason="CannotPullContainerError: no such")))
    assert ending.failed and not ending.retry
    assert "CannotPullContainerError" in ending.reason


class FakeLogs:
    class exceptions:
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, messages: list[str] | None, page: int = 2):
        self.messages, self.page, self.calls = messages, page, 0

    def get_log_events(self, *, logGroupName, logStreamName, startFromHead, nextToken=None):
        self.calls += 1
        if self.messages is None:
            raise self.exceptions.ResourceNotFoundException()
        start = int(nextToken or 0)
        chunk = self.messages[start:start + self.page]
        return {"events": [{"message": m} for m in chunk],
                "nextForwardToken": str(start + len(chunk))}


def test_outputs_are_read_in_order_across_pages_and_split_by_source():
    lines = [source_record("stdout", "a"), source_record("stderr", "e1"), "raw line",
             source_record("stdout", '{"source": "stderr", "log": "not a record"}'),
             source_record("stderr", "e2")]
    found = read_outputs(FakeLogs(lines), "group", log_stream(ARN))
    assert found.stdout == 'a\nraw line\n{"source": "stderr", "log": "not a record"}'
    assert found.stderr == "e1\ne2"


def test_outputs_past_the_limit_are_counted_not_kept():
    found = read_outputs(FakeLogs([source_record("stdout", "x" * 10)] * 5), "g", "s",
                         limit=25)
    assert found.stdout == "x" * 10 + "\n" + "x" * 10 and found.stdout_dropped == 33


def test_no_stream_is_no_output():
    found = read_outputs(FakeLogs(None), "g", "s")
    assert (found.stdout, found.stderr) == ("", "")


def test_the_stream_is_the_awslogs_driver_s_name():
    assert log_stream(ARN) == "job/job/abc123"


def test_a_launch_moves_the_task_to_its_own_cell_and_only_from_the_executor_s():
    running = {"state": "Running", "cell_id": "executor-1"}
    moved = lifecycle.apply(lifecycle.launched("executor-1", "container:e-1", 5,
                                               {"container_ref": ARN}), running).task
    assert moved["cell_id"] == "container:e-1" and moved["container_ref"] == ARN
    with pytest.raises(RunningOnDifferentCell):
        lifecycle.apply(lifecycle.launched("executor-2", "container:e-1", 5, {}), running)
    # An event of an earlier launch completes nothing of a later one.
    later = {"state": "Running", "cell_id": "container:e-2"}
    with pytest.raises(RunningOnDifferentCell):
        lifecycle.apply(lifecycle.complete("container:e-1", 6, failed=False), later)
    annotated = lifecycle.apply(lifecycle.annotate("container:e-2", {"stop_requested": "user"},
                                                   7), later).task
    assert annotated["stop_requested"] == "user" and annotated["state"] == "Running"


def test_a_retry_keeps_the_attempt_s_own_fields_and_starts_the_next_execution():
    before = {"state": "Running", "cell_id": "container:e-1", "retries": 1, "retried": 0,
              "started_at": 3}
    after = lifecycle.apply(lifecycle.retry(
        before, "exit code 3", 10, cell_id="container:e-1",
        attempt_extra={"exit_code": 3, "stdout": "out"}, updates={"execution_id": "e-2"}),
        before).task
    assert after["execution_id"] == "e-2" and after["state"] == "Pending"
    assert after["attempts"][0]["exit_code"] == 3 and after["attempts"][0]["stdout"] == "out"
    assert after["attempts"][0]["attempt"] == 1


def test_the_state_change_event_is_json_as_eventbridge_delivers_it():
    assert json.loads(json.dumps(event(exit_code=1)))["detail"]["group"] == "taskfn:e-1"


def test_reading_stops_at_twice_the_limit_however_much_the_job_printed():
    logs = FakeLogs([source_record("stdout", "x" * 10)] * 100_000, page=4)
    found = read_outputs(logs, "g", "s", limit=100)
    assert len(found.stdout) == 9 * 11 - 1 and 100 <= found.stdout_dropped + 99 <= 250
    assert logs.calls <= 200 * 2 // (4 * 11) + 2  # not the 25,000 pages there are


def test_reading_millions_of_empty_lines_stops_at_its_page_limit():
    from taskfn.runtime.containers import READ_PAGES_MAX

    logs = FakeLogs([source_record("stdout", "")] * 1_000_000, page=100)
    read_outputs(logs, "g", "s")
    assert logs.calls == READ_PAGES_MAX  # not the 10,000 pages there are
