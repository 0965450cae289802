"""moto's server in a process of its own, locked to the platform's roles.

`python -m taskfn.local.motoserver [--data DIR [--every S]]` prints `moto: <url>` once it
serves. Its standard input is its control line, which only the process that started it holds:
`enforce` turns IAM on (it answers `enforced`), `snapshot` snapshots the data now (it answers
`snapshot <held s> <write s> <bytes> <stream records trimmed>`), `stats` answers one line of
JSON (with TASKFN_LOCAL_PROFILE set: requests, wall and CPU time by action, see
local/profiling.py), and end of input stops it
(that is, when its parent ends). With --data, the state of the services the platform keeps
data in is restored from DIR before it serves and snapshotted there every S seconds and at
the end (local/persistence.py); DIR is locked while it runs, so two stacks never share one
(a second one prints `in use: <why>` and exits 1).

moto accepts anything by default, and user code runs on the same machine: the local stack
provisions with IAM off, creates each function's role, then turns IAM on, after which every
request must be signed with the credentials of a role (or the stack's own admin user) and is
checked against that role's policies. moto's own API (/moto-api: reset, data dumps, turning
IAM back off) is refused, and so is an unsigned request. The process is not dumpable, so the
IAM secrets it holds cannot be read from its memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from taskfn.local import datadir, persistence, presigned, profiling
from taskfn.local.provision import ACCOUNT_ID

READY_PREFIX = "moto: "
IN_USE_PREFIX = "in use: "  # then why: another stack has the data directory
# The services the platform's functions use (DynamoDB streams sign as dynamodb).
SERVICES = frozenset({"dynamodb", "s3", "sqs", "events", "logs"})
_SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=[A-Z0-9]{16,128}/\d{8}/[a-z0-9-]+/"
                    r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=[a-z0-9;.-]+, ?"
                    r"Signature=[0-9a-f]{64}")
ENFORCE, ENFORCED = "enforce", "enforced"
SNAPSHOT = "snapshot"
STATS = "stats"
SNAPSHOT_S = 2.0  # the default interval of snapshots: what a killed stack may lose

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskfn.local.motoserver")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--every", type=float, default=SNAPSHOT_S)
    args = parser.parse_args(argv)
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from taskfn.local import motospeed
    from taskfn.local.atomic import make_dynamodb_writes_atomic
    from taskfn.local.streamiterators import expire_shard_iterators
    from taskfn.local.streamrecords import serve_records_fast
    from taskfn.runtime import confinement

    confinement.prctl(confinement.PR_SET_DUMPABLE, 0)
    make_dynamodb_writes_atomic()
    expire_shard_iterators()
    serve_records_fast()
    motospeed.install()
    check_resources_of_dynamodb_and_events()
    # Ctrl-C, SIGTERM to the group and a closed terminal (SIGHUP) reach us with the parent:
    # it stops us once its own writes are done (and its end, however it ends, is our EOF), so
    # that the last snapshot has them.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    snapshots = None
    if args.data is not None:
        try:
            datadir.lock(datadir.prepare(args.data))
        except datadir.InUse as error:
            print(f"{IN_USE_PREFIX}{error}", flush=True)
            return 1
        try:
            persistence.restore(args.data / persistence.SNAPSHOT)
        except Exception as error:
            print(f"cannot restore {args.data / persistence.SNAPSHOT} ({error!r}): move it "
                  "away to start afresh", flush=True)
            return 1
        gate = persistence.Gate()
        persistence.patch_long_polls(gate)
        snapshots = persistence.Snapshotter(args.data, args.every, gate)
    guard = Guard(DomainDispatcherApplication(create_backend_app), snapshots,
                  stats=ActionStats() if os.environ.get(profiling.ENV) else None)
    server = make_server("127.0.0.1", 0, guard, threaded=True,
                         request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="moto").start()
    host, port = server.server_address[:2]
    if snapshots is not None:
        snapshots.start()
    print(f"{READY_PREFIX}http://{host}:{port}", flush=True)
    for line in sys.stdin:  # ends at EOF: the parent has gone or asked us to stop
        if line.strip() == ENFORCE:
            ActionAuthenticatorMixin.request_count = 0
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            guard.enforcing = True
            print(ENFORCED, flush=True)
        elif line.strip() == SNAPSHOT:
            taken = snapshots.snapshot() if snapshots else persistence.Snapshot(0, 0, 0)
            print(f"{SNAPSHOT} {taken.seconds:.6f} {taken.written_s:.6f} {taken.size} "
                  f"{taken.trimmed}", flush=True)
        elif line.strip() == STATS:
            figures = guard.stats.figures() if guard.stats is not None else {}
            print(json.dumps(figures), flush=True)
    if snapshots is not None:
        datadir.stopping(args.data)  # a stack started now waits for the last snapshot
    server.shutdown()
    if snapshots is not None:
        snapshots.stop()  # the last one: a clean stop loses nothing
    return 0


class ActionStats:
    """Requests, wall time and this process's CPU time by action (X-Amz-Target's operation,
    or the method and service of a REST request), and the process's CPU time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._actions: dict[str, list[float]] = {}

    def add(self, action: str, wall: float, cpu: float) -> None:
        with self._lock:
            entry = self._actions.get(action)
            if entry is None:
                self._actions[action] = [1, wall, cpu]
            else:
                entry[0] += 1
                entry[1] += wall
                entry[2] += cpu

    def figures(self) -> dict[str, Any]:
        with self._lock:
            actions = {name: {"count": int(count), "wall_s": round(wall, 6),
                              "cpu_s": round(cpu, 6)}
                       for name, (count, wall, cpu) in self._actions.items()}
        return {"actions": actions, "process": profiling.process_cpu()}


def action_of(environ: Environ) -> str:
    """``DynamoDB.UpdateItem``, ``AmazonSQS.ReceiveMessage``; ``s3 GET`` for REST."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        return f"{prefix.split('_')[0]}.{operation}"
    signed = _SIGV4.fullmatch(environ.get("HTTP_AUTHORIZATION", "").strip())
    service = signed["service"] if signed else "unsigned"
    return f"{service} {environ.get('REQUEST_METHOD', '')}"


class Guard:
    """WSGI middleware in front of moto: no /moto-api at all; once IAM is on, only well-formed
    SigV4 requests for the platform's services go through (moto verifies them), and anything
    else is a clear 403 (moto itself would answer some with a 500, and serves a few paths,
    such as its instance metadata, to anyone)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]],
                 snapshots: persistence.Snapshotter | None = None,
                 stats: ActionStats | None = None):
        self.app = app
        self.enforcing = False
        self.snapshots = snapshots  # with a data directory: requests pass its gate
        self.stats = stats

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.stats is None:
            return self._call(environ, start_response)
        wall, cpu = time.perf_counter(), time.thread_time()
        answer = self._call(environ, start_response)
        try:  # moto's bodies are bytes in memory: this is the whole answer
            return list(answer)
        finally:
            if hasattr(answer, "close"):
                answer.close()
            self.stats.add(action_of(environ), time.perf_counter() - wall,
                           time.thread_time() - cpu)

    def _call(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return _refuse(environ, start_response, 404,
                           "moto's own API is not served by taskfn local")
        if self.enforcing and presigned.is_presigned(environ):
            try:  # checked here (moto does not), then signed in a header for moto's IAM
                presigned.admit(environ, account_id=ACCOUNT_ID)
            except presigned.Refused as refusal:
                return _refuse(environ, start_response, 403, str(refusal))
        if self.enforcing:
            signed = _SIGV4.fullmatch(environ.get("HTTP_AUTHORIZATION", "").strip())
            if signed is None or signed["service"] not in SERVICES or path.startswith(
                    "/latest/"):
                return _refuse(environ, start_response, 403,
                               "requests must be signed by a taskfn role")
        if self.snapshots is None:
            return self.app(environ, start_response)
        with self.snapshots.gate.request():
            if persistence.is_write(environ):
                self.snapshots.dirty = True
            # The whole answer is made inside the gate (moto's bodies are bytes in memory).
            answer = self.app(environ, start_response)
            try:
                return list(answer)
            finally:
                if hasattr(answer, "close"):
                    answer.close()


def _refuse(environ: Environ, start_response: StartResponse, status: int,
            message: str) -> list[bytes]:
    """An error every AWS client parses: JSON for the JSON protocols, XML for the others."""
    code = "NotFound" if status == 404 else "AccessDenied"
    if "json" in environ.get("CONTENT_TYPE", ""):
        body, kind = json.dumps({"__type": f"{code}Exception", "message": message}).encode(), \
            "application/json"
    else:
        body = (f"<ErrorResponse><Error><Code>{code}</Code><Message>{message}</Message>"
                f"</Error></ErrorResponse>").encode()
        kind = "text/xml"
    reason = "Not Found" if status == 404 else "Forbidden"
    start_response(f"{status} {reason}", [("Content-Type", kind),
                                          ("Content-Length", str(len(body)))])
    return [body]


def check_resources_of_dynamodb_and_events() -> None:
    """moto checks DynamoDB and EventBridge actions against resource "*", which no policy
    scoped to a table or a bus allows; check them against the resources the request names,
    each of them, as IAM does."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler
    from moto.logs.responses import LogsResponse

    _check_each(DynamoHandler, _dynamodb_resources)
    _check_each(EventsHandler, _event_bus_resources)
    _check_each(LogsResponse, _log_resources)
    _check_transaction_items(DynamoHandler)


# IAM has no TransactWriteItems action: it authorizes each item of a transaction as the
# single-item action it is (the DynamoDB developer guide, "IAM with transactions").
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}


def _check_transaction_items(handler: type) -> None:
    original = handler._authenticate_and_authorize_normal_action
    if getattr(original, "_taskfn_transactions", False):
        return

    def authorize(self: Any, resource: str = "*") -> None:
        items = (getattr(self, "params", None) or {}).get("TransactItems")
        if self._get_action() != "TransactWriteItems" or not items:
            original(self, resource)
            return
        prefix = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/"
        for item in items:
            for kind, operation in item.items():
                action = _TRANSACT_ACTIONS.get(kind)
                if action is None or not isinstance(operation, dict):
                    continue
                self._get_action = lambda action=action: action
                try:
                    original(self, prefix + str(operation.get("TableName")))
                finally:
                    del self._get_action

    authorize._taskfn_transactions = True  # type: ignore[attr-defined]
    handler._authenticate_and_authorize_normal_action = authorize


def _check_each(handler: type, resources_of: Callable[[Any], list[str]]) -> None:
    original = handler._authenticate_and_authorize_normal_action
    if getattr(original, "_taskfn_resources", False):
        return

    def authorize(self: Any, resource: str = "*") -> None:
        for arn in resources_of(self) or [resource]:
            original(self, arn)

    authorize._taskfn_resources = True  # type: ignore[attr-defined]
    handler._authenticate_and_authorize_normal_action = authorize


def _dynamodb_resources(handler: Any) -> list[str]:
    params = getattr(handler, "params", None) or {}
    prefix = f"arn:aws:dynamodb:{handler.region}:{handler.current_account}:table/"
    if "TableName" in params:
        arn = prefix + str(params["TableName"])
        return [f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn]
    return [prefix + str(table) for table in sorted(params.get("RequestItems") or {})]


def _log_resources(handler: Any) -> list[str]:
    """A log group's (or its stream's) ARN, as IAM names it for the action."""
    group = handler._get_param("logGroupName")
    if not isinstance(group, str) or not group:
        return []
    arn = f"arn:aws:logs:{handler.region}:{handler.current_account}:log-group:{group}"
    stream = handler._get_param("logStreamName")
    return [f"{arn}:log-stream:{stream}" if isinstance(stream, str) and stream else f"{arn}:*"]


def _event_bus_resources(handler: Any) -> list[str]:
    params = getattr(handler, "params", None)
    if params is None:
        try:
            params = json.loads(handler.body or "{}")
        except ValueError:
            params = {}
    buses = {str(entry.get("EventBusName") or "default")
             for entry in params.get("Entries") or [] if isinstance(entry, dict)}
    prefix = f"arn:aws:events:{handler.region}:{handler.current_account}:event-bus/"
    return [bus if bus.startswith("arn:") else prefix + bus for bus in sorted(buses)]


class MotoProcess:
    """Starts and stops the child; `endpoint` is its URL. With `data_dir`, its state is kept
    there (snapshots every `snapshot_s` seconds)."""

    def __init__(self, data_dir: Path | None = None, snapshot_s: float = SNAPSHOT_S) -> None:
        command = [sys.executable, "-m", "taskfn.local.motoserver"]
        if data_dir is not None:
            command += ["--data", str(data_dir), "--every", str(snapshot_s)]
        self.data_dir = data_dir
        self._control = threading.Lock()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            self.stop()
            if line.startswith(IN_USE_PREFIX):
                raise datadir.InUse(line[len(IN_USE_PREFIX):])
            raise RuntimeError(f"moto did not start: {line or 'it ended'}")
        self.endpoint = line[len(READY_PREFIX):]

    def enforce_iam(self) -> None:
        """From now on only signed requests of known identities, within their policies."""
        answer = self._ask(ENFORCE)
        if answer != ENFORCED:
            raise RuntimeError(f"moto did not turn IAM on: {answer!r}")

    def stats(self) -> dict[str, Any]:
        """moto's figures by action (with TASKFN_LOCAL_PROFILE set; else none)."""
        return json.loads(self._ask(STATS) or "{}")

    def snapshot(self) -> persistence.Snapshot:
        """Snapshot the data now (with a data directory; else nothing): what it cost."""
        answer = self._ask(SNAPSHOT).split()
        if len(answer) != 5 or answer[0] != SNAPSHOT:
            raise RuntimeError(f"moto did not snapshot: {answer!r}")
        return persistence.Snapshot(float(answer[1]), float(answer[2]), int(answer[3]),
                                    int(answer[4]))

    def _ask(self, command: str) -> str:
        with self._control:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
            return self.process.stdout.readline().strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:  # the last snapshot is written before it ends
                self.process.wait(timeout=10 if self.data_dir is None else 120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
