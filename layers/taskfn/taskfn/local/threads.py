"""Powertools' request state, per thread, for the local stack.

Powertools keeps the request a resolver is handling on its base class (`BaseRouter.
current_event`, `lambda_context`) and the route it matched in the resolver (`context`): right
in Lambda, where an environment handles one invocation at a time, wrong in the local stack,
which runs every handler in one process and a request per thread. There, a request could be
routed by, or read the body and caller of, another request that started meanwhile: another
user's identity included (found by the load benchmark). `install()` keeps each of them per
thread; in a thread that handles one request at a time nothing else changes.
"""

from __future__ import annotations

import threading
from typing import Any

_SHARED = ("current_event", "lambda_context")
_installed = threading.Lock()
_done: list[bool] = []


class _PerThread:
    """A class attribute whose value each thread sees on its own."""

    def __init__(self, initial: Any = None):
        self.initial = initial
        self.local = threading.local()

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return getattr(self.local, "value", self.initial)

    def __set__(self, instance: Any, value: Any) -> None:
        self.local.value = value


class _PerThreadContext:
    """A resolver's `context` dict, one per thread and resolver."""

    def __init__(self) -> None:
        self.local = threading.local()

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        contexts = self.local.__dict__.setdefault("by_resolver", {})
        return contexts.setdefault(id(instance), {})

    def __set__(self, instance: Any, value: dict) -> None:
        self.local.__dict__.setdefault("by_resolver", {})[id(instance)] = value


def install() -> None:
    """Make Powertools' request state per thread, once per process."""
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, BaseRouter

    with _installed:
        if _done:
            return
        meta = type(BaseRouter)

        class PerThreadState(meta):  # type: ignore[misc, valid-type]
            """Assignments to BaseRouter.current_event (how Powertools sets them) go to the
            calling thread's value."""

            def __setattr__(cls, name: str, value: Any) -> None:
                slot = cls.__dict__.get(name)
                if isinstance(slot, _PerThread):
                    slot.__set__(None, value)
                else:
                    super().__setattr__(name, value)

        for name in _SHARED:
            setattr(BaseRouter, name, _PerThread(BaseRouter.__dict__.get(name)))
        BaseRouter.__class__ = PerThreadState
        ApiGatewayResolver.context = _PerThreadContext()
        _done.append(True)
