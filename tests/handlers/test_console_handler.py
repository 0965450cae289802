"""The console's handler with API Gateway's events: the page and its known files only, with
their types, cache headers and a strict Content-Security-Policy; any other name (../ and its
encodings included) is a 404 in GreenCloud's shape."""

from __future__ import annotations

import copy
import importlib.util
import json
import re

import pytest

from tests.handlers.test_events import ROOT, Context, invoke, load_event

STATIC = ROOT / "functions" / "console" / "static"
FUNCTION = "ConsoleFunction"


def get(path: str, headers: dict[str, str] | None = None, ws_url: str = "") -> dict:
    event = copy.deepcopy(load_event(FUNCTION))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if path != "/console":
        event["routeKey"] = event["requestContext"]["routeKey"] = "GET /console/{asset}"
        event["pathParameters"] = {"asset": path.removeprefix("/console/")}
    event["headers"].update(headers or {})
    return invoke(FUNCTION, event)


def test_the_page_is_html_with_a_strict_policy(monkeypatch):
    monkeypatch.setenv("WS_URL", "wss://abc.execute-api.us-east-1.amazonaws.com/live")
    answer = get("/console")
    assert answer["statusCode"] == 200
    headers = answer["headers"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    # The live logs' socket is the one other origin the page may reach.
    assert "connect-src 'self' wss://abc.execute-api.us-east-1.amazonaws.com;" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-cache" and headers["ETag"]
    # The page's scripts are files of its own: no inline script or style, no CDN.
    page = answer["body"]
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="module" src="console/app.js">']
    assert "style=" not in page and "<style" not in page and "https://" not in page


def test_without_a_websocket_api_the_page_connects_to_itself_only(monkeypatch):
    monkeypatch.delenv("WS_URL", raising=False)
    assert "connect-src 'self';" in get("/console")["headers"]["Content-Security-Policy"]


@pytest.mark.parametrize("name", sorted(p.name for p in STATIC.iterdir() if p.name != "index.html"))
def test_every_file_is_served_with_its_type(name):
    answer = get(f"/console/{name}")
    assert answer["statusCode"] == 200, answer
    kind = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
            ".svg": "image/svg+xml"}[name[name.rindex("."):]]
    assert answer["headers"]["Content-Type"] == kind
    assert answer["body"] == (STATIC / name).read_text()
    assert answer["headers"]["Cache-Control"] == "no-cache"


def test_a_known_etag_is_304_without_a_body():
    first = get("/console/app.js")
    again = get("/console/app.js", {"if-none-match": first["headers"]["ETag"]})
    assert again["statusCode"] == 304 and not again.get("body")
    other = get("/console/app.js", {"if-none-match": '"something-else"'})
    assert other["statusCode"] == 200


@pytest.mark.parametrize("name", [
    "index.html",  # the page only at /console
    "..", "../console.py", "..%2fconsole.py", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fconsole.py",
    "....//console.py", "..\\console.py", "console.py", "%00app.js", "app.js%00", "APP.JS",
    "app.js.map", ".", "static", "requirements.txt", "/etc/passwd",
])
def test_anything_else_is_404_in_greencloud_s_shape(name):
    answer = get(f"/console/{name}")
    assert answer["statusCode"] == 404, (name, answer)
    body = json.loads(answer["body"])
    assert body["message"] in ("no such file", "route not found") and set(body) == {"message"}


def test_no_module_builds_html_from_strings():
    """Data is shown as text: no innerHTML, outerHTML, insertAdjacentHTML, document.write or
    eval in the console's modules."""
    for path in STATIC.glob("*.js"):
        source = path.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                       "eval(", "new Function"):
            assert banned not in source, (path.name, banned)


def test_the_page_cannot_be_framed_nor_kept_by_its_opener():
    """frame-ancestors for today's browsers, X-Frame-Options for older ones; and COOP, so a
    page that opened the console (or that it opens) has no handle on it to steer #/ routes."""
    for path in ("/console", "/console/app.js"):
        headers = get(path)["headers"]
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert headers["Referrer-Policy"] == "no-referrer", path
    # Nothing of the console is a data: URL: images are its own files only.
    assert "img-src 'self';" in get("/console")["headers"]["Content-Security-Policy"]


@pytest.mark.parametrize("header", ["*", "W/{etag}", '"other", {etag}', " {etag} "])
def test_if_none_match_is_read_as_a_list_of_tags(header):
    etag = get("/console/app.js")["headers"]["ETag"]
    again = get("/console/app.js", {"if-none-match": header.format(etag=etag)})
    assert again["statusCode"] == 304 and not again.get("body"), header
    assert again["headers"]["ETag"] == etag


def test_a_tag_that_only_contains_ours_is_not_ours():
    etag = get("/console/app.js")["headers"]["ETag"]
    assert get("/console/app.js", {"if-none-match": f'"x{etag[1:]}'})["statusCode"] == 200


def _console_over(tmp_path, make) -> object:
    """The handler's module loaded from a copy beside a static/ folder made by `make`."""
    folder = tmp_path / "console"
    (folder / "static").mkdir(parents=True)
    (folder / "console.py").write_text((STATIC.parent / "console.py").read_text())
    (folder / "static" / "index.html").write_text("<!doctype html>")
    (folder / "static" / "app.js").write_text("export {};\n")
    make(folder / "static", folder)
    spec = importlib.util.spec_from_file_location(f"console_copy_{tmp_path.name}",
                                                  folder / "console.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["symlink to a secret", "symlink to the handler",
                                  "folder named like a file"])
def test_a_symlink_or_a_folder_in_static_is_not_served(tmp_path, kind):
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET=do-not-serve")

    def make(static, folder):
        if kind == "symlink to a secret":
            (static / "evil.js").symlink_to(secret)
        elif kind == "symlink to the handler":
            (static / "evil.js").symlink_to(folder / "console.py")
        else:
            (static / "evil.js").mkdir()

    module = _console_over(tmp_path, make)
    assert set(module.FILES) == {"index.html", "app.js"}
    event = copy.deepcopy(load_event(FUNCTION))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/console/evil.js"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /console/{asset}"
    event["pathParameters"] = {"asset": "evil.js"}
    answer = module.handler(event, Context())
    assert answer["statusCode"] == 404 and "SECRET" not in answer["body"]
    assert "import" not in answer["body"]
