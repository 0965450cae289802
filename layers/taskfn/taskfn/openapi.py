"""The one OpenAPI document of every route of every API.

Each handler's resolver describes its own routes (taskfn.apidoc); this merges them, names path
parameters as template.yaml does, and hoists shared schemas into the components. The result is
committed twice: openapi.json at the top of the repository (the contract people read) and
functions/docs/openapi.json (what the docs Lambda serves; a Lambda only has its own directory).

    python -m taskfn.openapi            write both
    python -m taskfn.openapi --check    exit 1 when either is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from taskfn.apidoc import STATUS_TEXT, TOKEN_SCHEME

ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = ("openapi.json", "functions/docs/openapi.json")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
DESCRIPTION = """\
taskfn runs functions as tasks. One state, four documented APIs over it: GreenCloud's platform
API (/v1/function, /v1/build, /v1/task), the Cell API after Diego BBS (/v1/tasks/*.r*, answers
200 with `error` in the body), and, as they are built, fastlane's jobs API and Coder's tasks
API. Every route but this document and its page needs `Authorization: Bearer <token>`; a
missing or unknown token is 401 in the route's own API's error shape. Another owner's
resources are 404, never 403."""


def _placeholders(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _hoist(node: Any, schemas: dict[str, Any]) -> Any:
    """Move every `$defs` (pydantic's sub-models, already referenced as components) into the
    components (`schemas`, which may gain entries)."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, _hoist(schema, schemas))
        return {key: _hoist(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [_hoist(value, schemas) for value in node]
    return node


def _operation(raw: dict[str, Any], path: str, public: bool) -> dict[str, Any]:
    operation = {k: v for k, v in raw.items() if k not in ("parameters", "security")}
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "minLength": 1}}
                  for name in _placeholders(path)]
    parameters.extend(operation.pop("x-taskfn-query", []))
    if parameters:
        operation["parameters"] = parameters
    if "x-taskfn-body" in operation:
        operation["requestBody"] = operation.pop("x-taskfn-body")
    # Powertools' own validation (its 422) is not used; taskfn's own 422 is kept.
    operation["responses"] = {
        status: answer for status, answer in sorted(operation["responses"].items())
        if status != "422" or answer.get("description") == STATUS_TEXT[422]}
    # An empty answer has no content (Powertools gives a 204 an empty JSON one).
    for status in ("204",):
        if status in operation["responses"]:
            operation["responses"][status].pop("content", None)
    operation["security"] = [] if public else [{TOKEN_SCHEME: []}]
    return operation


def build(root: Path = ROOT) -> dict[str, Any]:
    """The document, from template.yaml's routes and their handlers' resolvers."""
    from taskfn.adapters import bbs_doc, coder_doc, fastlane_doc, greencloud_doc
    from taskfn.local.invoke import Invoker
    from taskfn.local.template import load_template

    template = load_template(root / "template.yaml")
    invoker = Invoker(template, prefix="openapi")
    schemas: dict[str, Any] = {**greencloud_doc.COMPONENTS}
    paths: dict[str, dict[str, Any]] = {}
    documented: dict[str, dict[str, Any]] = {}
    for route in sorted(template.routes, key=lambda r: (r.path, r.method)):
        function = route.function_id
        if function not in documented:
            app = invoker.module(function).app
            documented[function] = app.get_openapi_schema(
                security_schemes={TOKEN_SCHEME: {"type": "http", "scheme": "bearer"}}
            ).model_dump(mode="json", by_alias=True, exclude_none=True)["paths"]
        found = [operation for own_path, item in documented[function].items()
                 if _shape(own_path) == _shape(route.path)
                 for method, operation in item.items() if method == route.method.lower()]
        if len(found) != 1:
            raise LookupError(f"{function} documents {route.method} {route.path} "
                              f"{len(found)} times")
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            found[0], route.path, public=route.authorizer is None)
    schemas.update(bbs_doc.COMPONENTS)
    schemas.update(fastlane_doc.COMPONENTS)
    schemas.update(coder_doc.COMPONENTS)
    paths = _hoist(paths, schemas)
    while any(isinstance(schema, dict) and "$defs" in schema for schema in schemas.values()):
        for name, schema in list(schemas.items()):
            schemas[name] = _hoist(schema, schemas)
    try:
        release = version("taskfn")
    except PackageNotFoundError:
        release = "0.0.0"
    return {
        "openapi": "3.1.0",
        "info": {"title": "taskfn", "version": release, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {TOKEN_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "a token from POST /v1/tokens; the raw token works too"}},
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def routes_of(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the document names."""
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in METHODS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taskfn.openapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when a copy is stale")
    args = parser.parse_args(argv)
    from taskfn.local import environment

    with environment.patched(environment.offline()):
        text = render(build())
    stale = [name for name in OUTPUTS
             if not (ROOT / name).is_file() or (ROOT / name).read_text() != text]
    if args.check:
        for name in stale:
            print(f"{name} is stale: run `make openapi`", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (ROOT / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
