"""Run a template function in this process, as the Lambda runtime would call it.

Handlers are loaded from their files (``<CodeUri>/<module>.py``) under unique module names,
because several functions share module names across CodeUri directories.
"""

from __future__ import annotations

import decimal
import importlib.util
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskfn.local import profiling, threads
from taskfn.local.identities import acting_as
from taskfn.local.provision import ACCOUNT_ID, REGION, physical_name
from taskfn.local.template import FunctionSpec, Template

MAX_ANSWER_BYTES = 6 * 1024 * 1024  # a synchronous invocation's answer, as JSON


class PayloadTooLargeForLambda(RuntimeError):
    """An answer over Lambda's synchronous payload limit (6 MB)."""


class LambdaContext:
    """The attributes and method of the Lambda context object that handlers use."""

    def __init__(self, spec: FunctionSpec, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + spec.timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _decimal_serializer(value: Any) -> Any:
    """What the Lambda Python runtime does with a Decimal in an answer."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _module_file(spec: FunctionSpec) -> tuple[Path, str]:
    module, _, attribute = spec.handler.rpartition(".")
    if not module:
        raise ValueError(f"{spec.logical_id}: Handler {spec.handler!r} is not module.function")
    return spec.code_uri / (module.replace(".", "/") + ".py"), attribute


def _module_name(path: Path) -> str:
    return "_taskfn_local_" + re.sub(r"\W", "_", str(path.with_suffix("")))


class Invoker:
    """Loads each handler lazily and once (thread-safe) and invokes it with a fresh context."""

    def __init__(self, template: Template, *, prefix: str = "taskfn-local") -> None:
        threads.install()  # handlers run concurrently here, one request per thread
        self.template = template
        self.prefix = prefix
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._modules: dict[Path, Any] = {}
        self._lock = threading.Lock()

    def handler(self, function_id: str) -> Callable[[Any, Any], Any]:
        """The handler callable of a function, importing its module on first use."""
        handler = self._handlers.get(function_id)
        if handler is not None:
            return handler
        with self._lock:
            if function_id not in self._handlers:
                spec = self.template.functions[function_id]
                path, attribute = _module_file(spec)
                module = self._modules.get(path) or self._load(path, spec)
                self._handlers[function_id] = getattr(module, attribute)
            return self._handlers[function_id]

    def module(self, function_id: str) -> Any:
        """The module a function's handler lives in (its resolver, for the OpenAPI document)."""
        self.handler(function_id)
        return self._modules[_module_file(self.template.functions[function_id])[0]]

    def _load(self, path: Path, spec: FunctionSpec) -> Any:
        if not path.is_file():
            raise FileNotFoundError(f"{spec.logical_id}: handler module {path} not found")
        # Lambda puts the code directory on sys.path, so a handler may import its siblings.
        if str(spec.code_uri) not in sys.path:
            sys.path.append(str(spec.code_uri))
        name = _module_name(path)
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        self._modules[path] = module
        return module

    def context(self, function_id: str) -> LambdaContext:
        """A new context for one invocation of the function."""
        spec = self.template.functions[function_id]
        return LambdaContext(spec, physical_name(self.prefix, function_id))

    def invoke(self, function_id: str, event: Any) -> Any:
        """Call the handler with a copy of the event; its answer goes through JSON as in AWS.
        Its AWS calls (its init's too) sign as its own role."""
        if not profiling.ON:
            return self._invoke(function_id, event)
        profiling.enter(f"handler: {function_id}")
        try:
            return self._invoke(function_id, event)
        finally:
            profiling.leave()

    def _invoke(self, function_id: str, event: Any) -> Any:
        with acting_as(function_id):
            handler = self.handler(function_id)
            payload = json.loads(json.dumps(event))
            result = handler(payload, self.context(function_id))
        answer = json.dumps(result, default=_decimal_serializer)
        if len(answer) > MAX_ANSWER_BYTES:  # Lambda refuses it, and API Gateway answers 500
            raise PayloadTooLargeForLambda(
                f"{function_id} answered {len(answer)} bytes; Lambda carries {MAX_ANSWER_BYTES}")
        return json.loads(answer)
