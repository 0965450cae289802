"""The parts of Powertools' event handler a route uses, without the rest of it.

`aws_lambda_powertools.event_handler/__init__.py` imports every resolver it has (AppSync with
asyncio, Bedrock agents, VPC Lattice, function URLs...) whenever any of its submodules is
imported: about 45 ms of a handler's cold start for classes no route uses. Our routes need the
HTTP API resolver and its Response, which live in its `api_gateway` submodule.

`submodule()` imports one submodule of a package without running the package's __init__
first: it registers the package in sys.modules as a module made from its own spec (its
__path__, so its submodules are found as usual) but not executed. The first time anyone asks
that package for a name that is not one of its submodules (`from
aws_lambda_powertools.event_handler import AppSyncResolver`, `dir()`, `__all__`), the real
__init__ runs into that same module object, so the package is then exactly what a plain import
makes: correct whether or not it was imported before (then nothing is done) and whatever is
imported after (tests import everything in one process).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.RLock()


def submodule(package: str, name: str) -> ModuleType:
    """`package.name`, imported without running package/__init__.py unless it already ran."""
    full = f"{package}.{name}"
    found = sys.modules.get(full)
    if found is not None:
        return found
    with _lock:
        if package not in sys.modules:
            _register_unexecuted(package)
    return importlib.import_module(full)


def _register_unexecuted(package: str) -> None:
    parent, _, last = package.rpartition(".")
    if parent:
        importlib.import_module(parent)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"no package {package!r}", name=package)
    module = importlib.util.module_from_spec(spec)
    state = {"done": False, "running": False}

    def initialize() -> None:
        """The package's own __init__, once: other threads wait for it (the lock); a nested
        lookup from the __init__ itself sees the package as it is so far, as an import
        does; a failure is raised to each asker until one succeeds."""
        with _lock:
            if state["done"] or state["running"]:
                return
            state["running"] = True
            try:
                spec.loader.exec_module(module)
            finally:
                state["running"] = False
            state["done"] = True
            for hook in ("__getattr__", "__dir__"):
                if module.__dict__.get(hook) in (__getattr__, __dir__):
                    del module.__dict__[hook]

    def __getattr__(attribute: str) -> Any:  # PEP 562: only names the module lacks
        if importlib.util.find_spec(f"{package}.{attribute}") is not None:
            # The import system asks before importing a submodule (`from pkg import sub`):
            # let it import that one alone.
            raise AttributeError(attribute)
        initialize()
        try:
            return module.__dict__[attribute]
        except KeyError:
            raise AttributeError(
                f"module {package!r} has no attribute {attribute!r}") from None

    def __dir__() -> list[str]:
        initialize()
        return sorted(module.__dict__)

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    module.__dir__ = __dir__  # type: ignore[attr-defined]
    sys.modules[package] = module
    if parent:
        setattr(sys.modules[parent], last, module)


_api_gateway = submodule("aws_lambda_powertools.event_handler", "api_gateway")
APIGatewayHttpResolver = _api_gateway.APIGatewayHttpResolver
Response = _api_gateway.Response

__all__ = ["APIGatewayHttpResolver", "Response", "submodule"]
