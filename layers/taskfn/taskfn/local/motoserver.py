"""moto's server in a process of its own, locked to the platform's roles.

`python -m taskfn.local.motoserver` prints `moto: <url>` once it serves. Its standard input is
its control line, which only the process that started it holds: `enforce` turns IAM on (it
answers `enforced`), and end of input stops it (that is, when its parent ends).

moto accepts anything by default, and user code runs on the same machine: the local stack
provisions with IAM off, creates each function's role, then turns IAM on, after which every
request must be signed with the credentials of a role (or the stack's own admin user) and is
checked against that role's policies. moto's own API (/moto-api: reset, data dumps, turning
IAM back off) is refused, and so is an unsigned request. The process is not dumpable, so the
IAM secrets it holds cannot be read from its memory.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from taskfn.local import presigned
from taskfn.local.provision import ACCOUNT_ID

READY_PREFIX = "moto: "
# The services the platform's functions use (DynamoDB streams sign as dynamodb).
SERVICES = frozenset({"dynamodb", "s3", "sqs", "events", "logs"})
_SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=[A-Z0-9]{16,128}/\d{8}/[a-z0-9-]+/"
                    r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=[a-z0-9;.-]+, ?"
                    r"Signature=[0-9a-f]{64}")
ENFORCE, ENFORCED = "enforce", "enforced"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def main() -> int:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from taskfn.local.atomic import make_dynamodb_writes_atomic
    from taskfn.runtime import confinement

    confinement.prctl(confinement.PR_SET_DUMPABLE, 0)
    make_dynamodb_writes_atomic()
    check_resources_of_dynamodb_and_events()
    # Ctrl-C reaches the whole process group; the parent stops us once its pollers are done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    guard = Guard(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, guard, threaded=True,
                         request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="moto").start()
    host, port = server.server_address[:2]
    print(f"{READY_PREFIX}http://{host}:{port}", flush=True)
    for line in sys.stdin:  # ends at EOF: the parent has gone or asked us to stop
        if line.strip() == ENFORCE:
            ActionAuthenticatorMixin.request_count = 0
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            guard.enforcing = True
            print(ENFORCED, flush=True)
    server.shutdown()
    return 0


class Guard:
    """WSGI middleware in front of moto: no /moto-api at all; once IAM is on, only well-formed
    SigV4 requests for the platform's services go through (moto verifies them), and anything
    else is a clear 403 (moto itself would answer some with a 500, and serves a few paths,
    such as its instance metadata, to anyone)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]):
        self.app = app
        self.enforcing = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
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
        return self.app(environ, start_response)


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
    """Starts and stops the child; `endpoint` is its URL."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskfn.local.motoserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"moto did not start: {line!r}")
        self.endpoint = line[len(READY_PREFIX):]

    def enforce_iam(self) -> None:
        """From now on only signed requests of known identities, within their policies."""
        self.process.stdin.write(ENFORCE + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != ENFORCED:
            raise RuntimeError(f"moto did not turn IAM on: {answer!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
