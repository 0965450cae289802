"""Coder's agent tasks (reference/coder.md) over taskfn's task records.

A Coder task is one task record (its id a UUID, so GET /v1/task/<id> of the platform API
reads it too) whose attempts are the turns of a conversation with its function:

- create writes the record (turn 1, Pending, its input the initial prompt) and its name
  item in one transaction, then sends it to the task queue like any task;
- the executor runs the function with {input, history, taskId}; the function may report its
  state (context.report_state), kept on the record; its return value is the turn's output;
- between turns the record is Completed: nothing runs, nothing is billed;
- send moves the finished turn on to the next (Completed → Pending, one conditional write on
  the turn read and on the task not being held), its input the new one and its history
  every entry before it, then sends it to the queue;
- pause holds a finished turn (a conditional write; a queued or running turn is 409 busy, as
  upstream refuses to stop a workspace mid-build), resume releases it;
- delete removes the record and its name (one transaction); a running turn is stopped by
  its cell's next heartbeat, which finds no task.

The log is the record's own: the current turn's input holds every earlier entry, and its
response is the turn's output, so logs need no writes of their own. Nothing changes a held
task but an input PATCH of its initial prompt, so a paused task's log is the snapshot taken
at its pause (snapshot_at: when it was held) without a copy.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from taskfn import lifecycle, userjson, wiring
from taskfn.adapters import coder
from taskfn.errors import (
    Conflict,
    InvalidRequest,
    InvalidStateTransition,
    NotFound,
    RunningOnDifferentCell,
)
from taskfn.lifecycle import State
from taskfn.models import Caller, Capabilities, FunctionRecord, TaskRecord, expiry, now_ns
from taskfn.settings import Settings, get_settings
from taskfn.stores.agenttasks import AgentTaskStore, NameTaken, PresetRecord
from taskfn.stores.blobs import BlobStore, task_key
from taskfn.stores.queue import TaskQueue
from taskfn.stores.records import BuildStore, FunctionStore
from taskfn.stores.tasks import TaskStore

NAME_TRIES = 5  # generated names drawn before a create gives up (4 hex digits each)
OUTPUT_MAX = 4 * 1024 * 1024  # of one output entry read back from S3


@dataclass(frozen=True)
class Logs:
    entries: list[dict[str, Any]]
    snapshot: bool
    snapshot_at: int = 0


class AgentTaskService:
    def __init__(self, store: AgentTaskStore, tasks: TaskStore, functions: FunctionStore,
                 builds: BuildStore, blobs: BlobStore, queue: TaskQueue, settings: Settings):
        self.store = store
        self.tasks = tasks
        self.functions = functions
        self.builds = builds
        self.blobs = blobs
        self.queue = queue
        self.settings = settings

    @classmethod
    def from_env(cls) -> AgentTaskService:
        tasks = wiring.tasks()
        return cls(AgentTaskStore(wiring.table(), tasks), tasks, wiring.functions(),
                   wiring.builds(), wiring.blobs(), wiring.task_queue(), get_settings())

    # --- create ----------------------------------------------------------------------------

    def create(self, caller: Caller, user: str, *, template_version_id: str | None,
               preset_id: str | None, prompt: str, name: str, display_name: str
               ) -> TaskRecord:
        """A new conversation, its first turn queued. `user` must be the caller (another
        user's tasks are not theirs to create)."""
        self.check_user(caller, user)
        build_id = coder.uuid_id(template_version_id or "")
        build = self.builds.get(build_id) if build_id else None
        function = self.functions.get(build.function_id) if build else None
        if build is None or function is None or build.owner != caller.user or \
                function.owner != caller.user or build.status != "SUCCESS" or not build.code_key:
            raise coder.with_validations(
                InvalidRequest("Template version not found.",
                               "template_version_id names no successful build of yours"),
                [{"field": "template_version_id", "detail": "template version not found"}])
        preset = self.preset(caller, preset_id) if preset_id else None
        prompt = coder.check_input(prompt or (preset.input_default if preset else ""))
        if name:
            coder.check_name(name)
        display = coder.display_name_of(display_name, prompt)
        now = now_ns()
        capabilities = function.capabilities
        if preset is not None:
            capabilities = Capabilities.model_validate({
                **capabilities.model_dump(),
                **({"timeout": preset.timeout} if preset.timeout else {}),
                **({"memSize": preset.mem_size} if preset.mem_size else {})})
        task_id = str(uuid.uuid4())
        record = TaskRecord(
            task_guid=task_id, owner=caller.user, created_at=now, updated_at=now,
            expires_at=expiry(now, self.settings.task_retention_days),
            **{**function.run_fields(), "build_id": build.id, "code_key": build.code_key,
               "lambda_version": build.lambda_version or function.lambda_version,
               "capabilities": capabilities, "timeout": capabilities.timeout},
            turn=1, turn_at=now, agent_display_name=display, initial_prompt=prompt,
            preset_id=preset_id or "",
        )
        record = record.model_copy(update=self._input_fields(
            task_id, 1, {"input": prompt, "history": [], "time": now}, as_record=True))
        for attempt in range(NAME_TRIES if not name else 1):
            chosen = name or coder.generated_name(prompt)
            try:
                self.store.create(record.model_copy(update={"agent_name": chosen}))
            except NameTaken:
                if name or attempt == NAME_TRIES - 1:
                    raise coder.with_validations(
                        Conflict(f"Task {chosen!r} already exists.",
                                 "task names are unique per owner, whatever their case"),
                        [{"field": "name", "detail":
                          "This value is already in use and should be unique."}]) from None
                continue
            record = record.model_copy(update={"agent_name": chosen})
            break
        self.queue.send_after_write(task_id)
        return record

    def _input_fields(self, task_id: str, turn: int, payload: dict[str, Any], *,
                      as_record: bool = False) -> dict[str, Any]:
        """Where a turn's input is kept: inline as JSON text, or in S3 (a key of its turn:
        a send that loses its write race overwrites no other turn's input)."""
        text = userjson.dumps(payload)
        if len(text.encode()) > self.settings.inline_input_bytes:
            key = task_key(task_id, f"turn-{turn}/input.json")
            self.blobs.put(key, text.encode(), "application/json")
            return {"input_key": key, "input": None} if as_record else {
                "input_key": key, "input_json": None}
        return {"input": payload, "input_key": ""} if as_record else {
            "input_json": text, "input_key": None}

    # --- reads -----------------------------------------------------------------------------

    @staticmethod
    def check_user(caller: Caller, user: str) -> None:
        """`{user}` must name the caller: another user's tasks are not theirs to create."""
        if not coder.is_caller(user, caller):
            raise NotFound("user not found")

    def task(self, caller: Caller, user: str, ident: str, *, consistent: bool = False
             ) -> TaskRecord:
        """`{task}` as an id (whatever `{user}` says) or a name (among `{user}`'s tasks,
        who must be the caller); another owner's task, or no agent task, is NotFound."""
        task_id = coder.as_uuid(ident)
        if task_id is None:
            if not coder.is_caller(user, caller) or coder.name_problem(ident):
                raise NotFound("task not found")
            task_id = self.store.task_id_by_name(caller.user, ident)
            if task_id is None:
                raise NotFound("task not found")
        task = self.tasks.get(task_id, consistent=consistent)
        if task is None or task.owner != caller.user or not task.turn or \
                task.expired(now_ns()):
            raise NotFound("task not found")
        return task

    def function_of(self, task: TaskRecord) -> FunctionRecord | None:
        return self.functions.get(task.function_id) if task.function_id else None

    def list(self, caller: Caller, found: coder.Filter) -> list[TaskRecord]:
        coder.check_filter(found, caller)
        tasks = [t for t in self.store.list(caller.user) if not t.expired(now_ns())]
        if found.status:
            tasks = [t for t in tasks if coder.status_of(t) == found.status]
        return tasks

    def logs(self, caller: Caller, user: str, ident: str) -> Logs:
        """Live while active; the snapshot while pending, initializing (none yet: the first
        turn is running, nothing was ever paused) or paused; 409 in error or unknown."""
        task = self.task(caller, user, ident)
        status = coder.status_of(task)
        if status in ("error", "unknown"):
            raise Conflict("Cannot fetch logs for task in current state.",
                           f"The task's status is {status!r}.")
        if status in ("pending", "initializing"):
            return Logs([], snapshot=True)
        entries = self.conversation(task)
        if status == "paused":
            return Logs(entries, snapshot=True, snapshot_at=task.held_at)
        return Logs(entries, snapshot=False)

    def conversation(self, task: TaskRecord) -> list[dict[str, Any]]:
        """Every entry of the conversation so far: the current turn's history, its input
        and, once the turn has ended, its output. The first input is the initial prompt as
        it is now (an input PATCH replaces it)."""
        payload = self._payload(task)
        entries = [*payload.get("history", []),
                   {"type": "input", "content": str(payload.get("input", "")),
                    "time": coder.rfc3339(int(payload.get("time") or task.turn_at))}]
        entries[0] = {**entries[0], "content": task.initial_prompt}
        if task.state in (State.COMPLETED, State.RESOLVING):
            entries.append({"type": "output", "content": self._output(task),
                            "time": coder.rfc3339(task.first_completed_at or task.updated_at)})
        return [{"id": position, **entry} for position, entry in enumerate(entries)]

    def _payload(self, task: TaskRecord) -> dict[str, Any]:
        if task.input_key:
            return json.loads(self.blobs.get(task.input_key))
        return task.input or {}

    def _output(self, task: TaskRecord) -> str:
        """A finished turn's output: the function's response body as text (a failed turn's:
        its error), read from S3 when it was kept there."""
        if task.response_key:
            body = self.blobs.get_unless_over(task.response_key, OUTPUT_MAX) or b""
            return body.decode("utf-8", errors="replace")
        if task.response_body is None:
            return task.failure_reason
        if task.response_base64:
            return base64.b64decode(task.response_body).decode("utf-8", errors="replace")
        return task.response_body

    # --- the conversation's moves -------------------------------------------------------------

    def send(self, task: TaskRecord, text: str) -> None:
        """The next turn of `task` (resolved by `task()` first, so that another owner's is
        404 before its body is read), with `text` as its input: only while active and
        between turns."""
        coder.check_input(text)
        self._check_sendable(task)
        now = now_ns()
        history = [{k: e[k] for k in ("type", "content", "time")}
                   for e in self.conversation(task)]
        payload = {"input": text, "history": history, "time": now}
        size = len(userjson.dumps(payload).encode())
        if size > coder.CONVERSATION_MAX:
            raise Conflict("Task conversation is too long.",
                           f"Its history and this input are {size} bytes as JSON, more than "
                           f"a turn takes ({coder.CONVERSATION_MAX}); start a new task.")
        # The input is taken: the conversation is working until the function says otherwise
        # (so a client waiting for idle does not read the last turn's).
        updates = {**self._input_fields(task.task_guid, task.turn + 1, payload),
                   "state_json": json.dumps({"at": now, "state": "working",
                                             "message": "", "uri": ""})}
        try:
            self.tasks.next_turn(task.task_guid, lifecycle.next_turn(task.turn, now, updates))
        except (InvalidStateTransition, RunningOnDifferentCell):
            # Another send, a pause or the turn's end won the race: say what it is now.
            self._check_sendable(self.tasks.get(task.task_guid, consistent=True) or task)
            raise Conflict("Task app is not ready to accept input.",
                           "the task changed meanwhile; try again") from None
        self.queue.send_after_write(task.task_guid)

    @staticmethod
    def _check_sendable(task: TaskRecord) -> None:
        status = coder.status_of(task)
        if status == "paused":
            raise Conflict("Task is paused.", "Resume the task to send messages.")
        if status in ("pending", "initializing"):
            raise Conflict(f"Task is {status}.", "The task is resuming. Wait for the task "
                           "to become active before sending messages.")
        if status != "active":
            raise InvalidRequest("Task must be active.", f"Task status is {status!r}, it "
                                 "must be 'active' to interact with the task.")
        if coder.busy(task):
            raise Conflict("Task app is not ready to accept input.",
                           "A turn is still running; send once it has ended.")

    @staticmethod
    def _refuse_held_by_function(task: TaskRecord) -> None:
        """A queued turn held because its function is paused shows as paused, but it is the
        function, not the task, that resumes it."""
        if task.state is State.PENDING and task.held_at:
            raise Conflict("Task is held: its function is paused.",
                           f"Resume function {task.function_id} (POST /v1/function/"
                           f"{task.function_id}/resume); the queued turn then runs.")

    def update_input(self, task: TaskRecord, text: str) -> None:
        """Replace the initial prompt of `task` (resolved by `task()`), only while paused."""
        coder.check_input(text)
        self._refuse_held_by_function(task)
        if coder.status_of(task) != "paused" or task.state is not State.COMPLETED:
            raise Conflict("Unable to update task input, task must be paused.",
                           f"The task's status is {coder.status_of(task)!r}.")
        try:
            self.tasks.apply(task.task_guid, lifecycle.edit_held(
                task.turn, now_ns(), {"initial_prompt": text}))
        except (InvalidStateTransition, RunningOnDifferentCell):
            raise Conflict("Unable to update task input, task must be paused.",
                           "the task changed meanwhile") from None

    def pause(self, caller: Caller, user: str, ident: str) -> TaskRecord:
        """Hold the finished turn; 409 while a turn is queued or running (busy), when
        paused already, or in error."""
        task = self.task(caller, user, ident, consistent=True)
        status = coder.status_of(task)
        if status == "paused":
            raise Conflict("Task is already paused.", "Resume it first.")
        if coder.busy(task):
            raise Conflict("Task is busy.", "A turn is queued or running; pause the task "
                           "once it has ended.")
        if status != "active":
            raise Conflict("Task must be active to be paused.",
                           f"The task's status is {status!r}.")
        try:
            outcome = self.tasks.apply(task.task_guid,
                                       lifecycle.hold_turn(task.turn, now_ns()))
        except (InvalidStateTransition, RunningOnDifferentCell):
            raise Conflict("Task is busy.", "the task changed meanwhile") from None
        return TaskRecord.model_validate(outcome.task)

    def resume(self, caller: Caller, user: str, ident: str) -> TaskRecord:
        task = self.task(caller, user, ident, consistent=True)
        self._refuse_held_by_function(task)
        if coder.status_of(task) != "paused" or task.state is not State.COMPLETED:
            raise Conflict("Task workspace is already running.",
                           f"The task's status is {coder.status_of(task)!r}.")
        try:
            outcome = self.tasks.apply(task.task_guid, lifecycle.release_turn(now_ns()))
        except (InvalidStateTransition, RunningOnDifferentCell):
            raise Conflict("Task workspace is already running.",
                           "the task changed meanwhile") from None
        return TaskRecord.model_validate(outcome.task)

    def delete(self, caller: Caller, user: str, ident: str) -> None:
        task = self.task(caller, user, ident, consistent=True)
        if not self.store.delete(task):
            raise NotFound("task not found")

    # --- presets (taskfn's extension) ---------------------------------------------------------

    def preset(self, caller: Caller, preset_id: str) -> PresetRecord:
        found = self.store.preset(caller.user, preset_id)
        if found is None:
            raise coder.with_validations(
                InvalidRequest("Template version preset not found."),
                [{"field": "template_version_preset_id", "detail": "preset not found"}])
        return found

    def presets(self, caller: Caller) -> list[PresetRecord]:
        return sorted(self.store.presets(caller.user), key=lambda p: (p.created_at, p.id))

    def create_preset(self, caller: Caller, fields: coder.PresetFields) -> PresetRecord:
        now = now_ns()
        preset = PresetRecord(id=str(uuid.uuid4()), owner=caller.user, name=fields.name,
                              created_at=now, updated_at=now, timeout=fields.timeout,
                              mem_size=fields.mem_size, input_default=fields.input)
        if not self.store.put_preset(preset, new=True):
            raise Conflict("the preset id is taken; try again")
        return preset

    def update_preset(self, found: PresetRecord, fields: coder.PresetFields) -> PresetRecord:
        """Replace a preset of the caller's, found by `own_preset()` first (another owner's
        is 404 before its body is read); tasks created from it keep what they took."""
        preset = found.model_copy(update={
            "name": fields.name, "timeout": fields.timeout, "mem_size": fields.mem_size,
            "input_default": fields.input, "updated_at": now_ns()})
        if not self.store.put_preset(preset, new=False):
            raise NotFound("preset not found")
        return preset

    def delete_preset(self, caller: Caller, preset_id: str) -> None:
        if coder.as_uuid(preset_id) is None or not self.store.delete_preset(
                caller.user, coder.as_uuid(preset_id) or ""):
            raise NotFound("preset not found")

    def own_preset(self, caller: Caller, preset_id: str) -> PresetRecord:
        canonical = coder.as_uuid(preset_id)
        found = self.store.preset(caller.user, canonical) if canonical else None
        if found is None:
            raise NotFound("preset not found")
        return found
