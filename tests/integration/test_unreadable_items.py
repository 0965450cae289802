"""One task item that does not read back as a task (written by an older version, or by hand)
stops nothing for anybody else (issue 9): the stream keeps publishing, convergence keeps
converging, lists keep listing, and the executor fails that task instead of leaving it
Running."""

from __future__ import annotations

from taskfn import wiring
from taskfn.adapters.bbs_view import task_view
from taskfn.models import now_ns
from taskfn.services.converger import Converger
from taskfn.services.events import TaskEvents
from taskfn.services.executor import Executor
from taskfn.settings import get_settings
from taskfn.stores.table import time_key
from tests.integration.helpers import StreamReader

from .test_task_events import a_task


def put_unreadable(guid: str, *, created_at: int = 1) -> None:
    """A Pending Cell API task with a time that is not a number."""
    created = time_key(created_at, guid)
    wiring.table().put({
        "PK": f"TASK#{guid}", "SK": "TASK", "task_guid": guid, "owner": "mallory",
        "domain": "demo", "state": "Pending", "created_at": "yesterday",
        "updated_at": created_at, "definition_json": "{}",
        "GSI1PK": "OWNER#mallory#TASK", "GSI1SK": created,
        "GSI3PK": "OPEN", "GSI3SK": created, "GSI4PK": "DOMAIN#demo", "GSI4SK": created,
    })


def test_the_stream_publishes_the_other_tasks_events(backend):
    service = TaskEvents.from_env()
    reader = StreamReader()
    put_unreadable("bad-1")
    wiring.tasks().put_new(a_task("good-1"))
    assert service.publish(reader.records("EventsFunction"), task_view) == 1


def test_convergence_and_lists_go_on_without_the_item(backend):
    put_unreadable("bad-1")
    # Waited just past the grace: due to be sent to the queue again.
    old = now_ns() - int((get_settings().dispatch_grace_s + 1) * 10**9)
    wiring.tasks().put_new(a_task("good-1").model_copy(
        update={"placement_tags": [], "created_at": old, "updated_at": old}))
    report = Converger.from_env().run()
    assert (report.open, report.dispatched, report.expired) == (1, 1, 0)

    assert [t.task_guid for t in wiring.tasks().open_tasks(bound=10)[0]] == ["good-1"]
    listed = wiring.tasks().list_by_domain("demo", bound=100)
    assert [task.task_guid for task in listed] == ["good-1"]


def test_the_executor_fails_an_unreadable_task_at_once(backend, tmp_path):
    put_unreadable("bad-1")
    executor = Executor.from_env()
    assert executor.run("bad-1") == "skipped"
    item = wiring.table().get("TASK#bad-1", "TASK")
    assert item["state"] == "Completed" and item["failed"] is True
    assert "cannot be read" in item["failure_reason"]
    # A Cell API task: on the open index until convergence deletes it after the completed
    # expiry (an unreadable one is left out of every pass, as above).
    assert "GSI3PK" in item
