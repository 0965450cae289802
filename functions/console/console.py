"""GET /console and GET /console/{asset}: the web console, a page of plain ES modules (no
build step) that signs in with a token kept in the browser's sessionStorage and calls the
public APIs with it. This handler only serves the page's own files, without a token: the
files known at import (static/, flat), nothing else, so no path can reach another file.

The page allows only its own scripts and styles (script-src 'self'); its API calls go to
this origin, and the live logs' WebSocket to the WebSocket API (WS_URL), the one other
origin it may connect to."""

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.errors import NotFound
from taskfn.powertools import Response

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8"}


def _known(folder: Path) -> dict[str, tuple[str, str, str]]:
    """name -> (content type, text, ETag) of the folder's own regular files: a symlink (to
    /etc/passwd, to the handler) or a folder named like a file is not one of them."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in TYPES or path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        files[path.name] = (TYPES[path.suffix], data.decode(),
                            '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
    return files


# index.html is the page itself, not an asset.
FILES = _known(STATIC)
PAGE = "index.html"
# Revalidated on every load (an ETag answers 304): after a deploy no module is stale.
CACHE = "no-cache"

app = api.resolver(greencloud.error_response)
FILE_ANSWERS = {
    200: apidoc.Answer("the file", {"type": "string"}, media="text/javascript",
                       also={"text/css": {"type": "string"}, "image/svg+xml": {"type": "string"}}),
    # A browser's revalidation (If-None-Match): no body.
    304: apidoc.Answer("Not modified", {"type": "string", "maxLength": 0}, media="text/plain"),
}


def policy(ws_url: str) -> str:
    """The page's Content-Security-Policy: its own files, its own API, the WebSocket API."""
    split = urlsplit(ws_url)
    sockets = f" {split.scheme}://{split.netloc}" if split.scheme in ("ws", "wss") else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match's weak comparison: `*`, or one of its listed tags (W/ or not) is ours."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def _serve(name: str) -> Response:
    content_type, text, etag = FILES[name]
    headers = {"Cache-Control": CACHE, "ETag": etag, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer",
               # Older browsers' frame-ancestors; and no window that opened the console (or
               # that it opens) keeps a handle on it to steer its #/ routes.
               "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
               "Content-Security-Policy": policy(os.environ.get("WS_URL", ""))}
    if matches(app.current_event.headers.get("if-none-match") or "", etag):
        return Response(304, None, None, headers)
    return Response(200, content_type, text, headers)


@app.get("/console", **apidoc.route(
    apidoc.CONTRACT, operation_id="getConsole", summary="The web console (a page)",
    public=True, answers={200: apidoc.Answer("an HTML page", {"type": "string"},
                                             media="text/html"),
                          304: FILE_ANSWERS[304]}))
def page():
    return _serve(PAGE)


@app.get("/console/<asset>", **apidoc.route(
    apidoc.CONTRACT, operation_id="getConsoleAsset", summary="A file of the web console",
    public=True, errors=(404,), answers=FILE_ANSWERS))
def asset(asset: str):
    if asset == PAGE or asset not in FILES:  # only the known files, by their exact names
        raise NotFound("no such file")
    return _serve(asset)


handler = api.entrypoint(app)
