"""GET /openapi.json, GET /docs and GET /docs/{asset}: the contract and its Swagger UI, without
a token. The document is the committed one (`make openapi` writes it beside this file); the
page's assets come from the pinned swagger-ui-py package (Swagger UI 5, which reads OpenAPI
3.1), never from a CDN."""

import importlib.util
from pathlib import Path

from taskfn import api, apidoc
from taskfn.adapters import greencloud
from taskfn.errors import NotFound
from taskfn.powertools import Response

HERE = Path(__file__).resolve().parent
DOCUMENT = (HERE / "openapi.json").read_text()
# The page's own script is a file too, so the page can forbid inline scripts.
INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
};
"""
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>taskfn API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script src="docs/init.js"></script></body></html>
"""
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
          "swagger-ui-standalone-preset.js": "text/javascript"}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
CACHED = {"Cache-Control": "public, max-age=3600"}

app = api.resolver(greencloud.error_response)


def _vendor() -> Path:
    """The package's static files, found without importing it (its web-framework glue)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("the Swagger UI package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@app.get("/openapi.json", **apidoc.route(
    apidoc.CONTRACT, operation_id="getOpenAPI", summary="This document", public=True,
    answers={200: apidoc.Answer("the OpenAPI 3.1 document", {"type": "object"})}))
def document():
    return Response(200, "application/json", DOCUMENT, CACHED)


@app.get("/docs", **apidoc.route(
    apidoc.CONTRACT, operation_id="getDocs", summary="The document as a Swagger UI page",
    public=True, answers={200: apidoc.Answer("an HTML page", {"type": "string"},
                                             media="text/html")}))
def page():
    return Response(200, "text/html; charset=utf-8", PAGE.decode(),
                    {"Content-Security-Policy": POLICY, **CACHED})


@app.get("/docs/<asset>", **apidoc.route(
    apidoc.CONTRACT, operation_id="getDocsAsset", summary="A file of the Swagger UI page",
    public=True, errors=(404,),
    answers={200: apidoc.Answer("the file", {"type": "string"}, media="text/css",
                                also={"text/javascript": {"type": "string"}})}))
def asset(asset: str):
    if asset == "init.js":
        return Response(200, "text/javascript", INIT.decode(), CACHED)
    if asset not in ASSETS:
        raise NotFound("no such file")
    return Response(200, ASSETS[asset], (_vendor() / asset).read_text(), CACHED)


handler = api.entrypoint(app)
