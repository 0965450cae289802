"""moto's state kept in a data directory, run inside the moto process (motoserver.py).

moto keeps everything in memory and has no persistence of its own, so this pickles the
backends of the services the platform keeps data in (KEPT) to one snapshot file: on a timer
when something was written, and once more when the server stops. A start restores the last
snapshot before the server serves. IAM and STS are not kept: the stack creates its roles and
their secrets afresh on every start. Stream records that every mapping has read are dropped
first (`trim_streams`): moto keeps them forever, and they would be most of the snapshot.

A snapshot must be consistent (a transaction half applied, or a message sent with its task
record missing, would be worse than losing both), so every request passes a Gate that a
snapshot closes: requests in flight finish, new ones wait while the backends are pickled
(the file is written after the gate opens again). SQS long polls wait outside the gate.

Locks, conditions and events are not picklable; they are pickled as new ones. S3's keys
pickle their bytes themselves (moto's FakeKey.__getstate__).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SNAPSHOT = "moto.pickle"
FORMAT = 1
# The services whose data the platform keeps (ECS: the jobs' cluster; Scheduler: its group).
KEPT = ("dynamodb", "s3", "sqs", "events", "logs", "scheduler", "ecs")
# Actions that change nothing worth a snapshot (JSON protocols name theirs in X-Amz-Target).
# ReceiveMessage only moves visibility, which a restore resets; every idle queue polls it.
_READS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Head", "Filter",
          "ReceiveMessage")


class Gate:
    """Any number of requests at once, or one snapshot. Re-entrant per thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active = 0
        self._closed = False
        self._depth = threading.local()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        depth = getattr(self._depth, "value", 0)
        if depth == 0:
            self._enter()
        self._depth.value = depth + 1
        try:
            yield
        finally:
            self._depth.value = depth
            if depth == 0:
                self._leave()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """A request waiting for something (a long poll) lets a snapshot through meanwhile."""
        depth = getattr(self._depth, "value", 0)
        if depth == 0:
            yield
            return
        self._depth.value = 0
        self._leave()
        try:
            yield
        finally:
            self._enter()
            self._depth.value = depth

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._closed = True
            while self._active:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()

    def _enter(self) -> None:
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._active += 1

    def _leave(self) -> None:
        with self._condition:
            self._active -= 1
            if not self._active:
                self._condition.notify_all()


def is_write(environ: dict[str, Any]) -> bool:
    """Whether a request may change moto's state (a guess on the safe side)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        action = target.rpartition(".")[2]
        return not action.startswith(_READS)
    return environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD", "OPTIONS")


class _Pickler(pickle.Pickler):
    """Locks and their kin as new ones; everything else as pickle does."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCKS):
            return type(obj), ()
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, threading.Event):
            return threading.Event, ()
        return NotImplemented


_LOCKS = (type(threading.Lock()), type(threading.RLock()))


# What BackendDict itself holds; a service's subclass may hold more (S3: bucket_accounts,
# the buckets' common namespace), which is kept with the backends.
_BACKEND_DICT = frozenset({"backend", "service_name", "_use_boto3_regions",
                           "_additional_regions", "_id"})


def _backends() -> dict[str, dict[str, Any]]:
    """{service: {"accounts": {account: {region: backend}}, "extras": {...}}} of what exists
    (nothing is created)."""
    from moto.backends import get_backend

    found: dict[str, dict[str, Any]] = {}
    for service in KEPT:
        backends = get_backend(service)
        accounts = {account: dict(dict.items(regions))
                    for account, regions in dict.items(backends)}
        found[service] = {
            "accounts": {account: regions for account, regions in accounts.items() if regions},
            "extras": {name: value for name, value in vars(backends).items()
                       if name not in _BACKEND_DICT}}
    return found


def trim_streams() -> int:
    """Drop the stream records that every mapping of their stream has read (see
    local/checkpoints.py); how many. moto numbers a shard's records from its starting
    sequence number, which moves on by as many."""
    from moto.backends import get_backend

    from taskfn.local.checkpoints import read_positions

    dropped = 0
    for regions in dict.values(get_backend("dynamodb")):
        for backend in dict.values(regions):
            readers = read_positions(backend.tables)
            for table in backend.tables.values():
                shard = table.stream_shard
                if shard is None or not table.latest_stream_label:
                    continue
                positions = readers.get(f"{table.table_arn}/stream/{table.latest_stream_label}")
                if not positions or any(shard.id not in p for p in positions):
                    continue
                read = min(int(p[shard.id]) for p in positions) + 1 - shard.starting_sequence_number
                read = min(read, len(shard.items))
                if read > 0:
                    del shard.items[:read]
                    shard.starting_sequence_number += read
                    dropped += read
    return dropped


def dumps() -> bytes:
    """The kept backends as one pickle (the caller keeps requests out meanwhile)."""
    import moto

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {"format": FORMAT, "moto": moto.__version__, "backends": _backends()})
    return buffer.getvalue()


def write_private(path: Path, data: bytes) -> None:
    """Write a file atomically (a temporary file renamed over it), mode 0600, synced."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def restore(path: Path) -> bool:
    """Install the snapshot's backends (before the server serves); False when there is none.
    Messages that were received and not deleted are visible again at once: whoever received
    them died with the previous process."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a write that was killed
        stale.unlink(missing_ok=True)
    if not path.exists():
        return False
    with path.open("rb") as file:
        install(file.read(), str(path))
    return True


def install(data: bytes, source: str = "the snapshot") -> None:
    """Put the backends of a `dumps()` in place of moto's own, as they were then (a test's
    fresh backend is a provisioned state installed anew). Received and undeleted messages
    are visible again at once."""
    import moto
    from moto.backends import get_backend

    state = pickle.loads(data)
    if state.get("format") != FORMAT:
        raise RuntimeError(f"{source}: snapshot format {state.get('format')}, not {FORMAT}")
    if state.get("moto") != moto.__version__:
        sys.stderr.write(f"taskfn local: {source} was written by moto {state.get('moto')}, "
                         f"this is moto {moto.__version__}\n")
    for service, kept in state["backends"].items():
        backends = get_backend(service)
        for account, regions in kept["accounts"].items():
            live = backends[account]
            for region, backend in regions.items():
                dict.__setitem__(live, region, backend)
        for name, value in kept["extras"].items():
            setattr(backends, name, value)
    for regions in state["backends"].get("sqs", {}).get("accounts", {}).values():
        for backend in regions.values():
            for queue in backend.queues.values():
                queue.pending_messages.clear()
                for message in queue._messages:
                    message.visible_at = 0.0


@dataclass
class Snapshot:
    seconds: float  # requests were held this long
    written_s: float  # then writing the file took this long
    size: int
    trimmed: int = 0  # stream records dropped first, read by every mapping


class Snapshotter:
    """Snapshots `directory`'s file every `every_s` seconds when something was written, or
    less often when snapshots hold requests long (a big state): requests are held at most
    HELD_SHARE of the time, at the cost of a longer window of writes that a kill loses."""

    HELD_SHARE = 0.2

    def __init__(self, directory: Path, every_s: float, gate: Gate) -> None:
        self.path = directory / SNAPSHOT
        self.every_s = every_s
        self.gate = gate
        self.dirty = False
        self.last: Snapshot | None = None
        self._lock = threading.Lock()  # one snapshot at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskfn-snapshots", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and take the last snapshot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.dirty or not self.path.exists():
            self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            started = time.perf_counter()
            with self.gate.closed():
                self.dirty = False
                trimmed = trim_streams()
                data = dumps()
            held = time.perf_counter() - started
            write_private(self.path, data)
            self.last = Snapshot(held, time.perf_counter() - started - held, len(data), trimmed)
            return self.last

    def interval(self) -> float:
        """Seconds to the next snapshot (see the class)."""
        held = self.last.seconds if self.last is not None else 0.0
        return max(self.every_s, held / self.HELD_SHARE)

    def _run(self) -> None:
        while not self._stop.wait(self.interval()):
            if not self.dirty:
                continue
            try:
                self.snapshot()
            except Exception:
                sys.stderr.write("taskfn local: the snapshot of moto's state failed\n")
                traceback.print_exc(file=sys.stderr)


def patch_long_polls(gate: Gate) -> None:
    """SQS's ReceiveMessage waits for messages inside the request: outside the gate."""
    from moto.sqs.models import Queue

    original = Queue.wait_for_messages
    if getattr(original, "_taskfn_gate", False):
        return

    def wait_for_messages(self: Any, timeout: int) -> None:
        with gate.released():
            original(self, timeout)

    wait_for_messages._taskfn_gate = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = wait_for_messages
