"""The contract (issue 9): openapi.json is what the handlers' resolvers say, and it names
exactly the routes template.yaml has."""

from __future__ import annotations

import json
from pathlib import Path

from taskfn import openapi
from taskfn.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")


def committed() -> dict:
    return json.loads((ROOT / "openapi.json").read_text())


def test_the_committed_document_is_not_stale(capsys):
    assert openapi.main(["--check"]) == 0, capsys.readouterr().err


def test_the_document_names_exactly_the_template_s_routes():
    template = {(route.method, route.path) for route in TEMPLATE.routes}
    document = openapi.routes_of(committed())
    assert document - template == set(), "routes the template lacks"
    assert template - document == set(), "template routes the document lacks"


def test_every_operation_says_its_auth_answers_and_errors_in_its_api_s_shape():
    document = committed()
    errors = {"GreenCloud platform API": "GreenCloudError", "Cell API (Diego BBS)": "CellError",
              "Contract": "GreenCloudError", "fastlane jobs API": "FastlaneError",
                  "Coder tasks API": "CoderError"}
    public = {(route.method, route.path) for route in TEMPLATE.routes if route.authorizer is None}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            (tag,) = operation["tags"]
            key = (method.upper(), path)
            assert operation["security"] == ([] if key in public else [{"token": []}]), key
            assert operation["operationId"] and operation["summary"], key
            # a success, or (fastlane's /ws over HTTP) the redirect to the WebSocket API
            assert any(status.startswith("2") or status == "307"
                       for status in operation["responses"]), key
            for status, answer in operation["responses"].items():
                if status.startswith("4") and "text/plain" in answer["content"]:
                    # fastlane's enqueue routes refuse a payload in plain text, as upstream.
                    assert tag == "fastlane jobs API" and status in ("400", "413"), key
                    continue
                if status.startswith("4"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{errors[tag]}"}, key
            if key not in public:
                assert {"401", "403"} <= set(operation["responses"]), key
    refs = {part.split("/")[-1] for part in json.dumps(document).split('"$ref": "')[1:]
            for part in [part.split('"')[0]]}
    assert refs <= set(document["components"]["schemas"])
