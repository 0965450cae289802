"""fastlane's stream page (GET …/stream): the job's (or an execution's) output followed live
over the WebSocket API, in plain JavaScript with no build step. The output is added as text
nodes, never as HTML, and the only script is the page's own (its nonce in the CSP). It stops
on "wsdone" and tries again 5 s after "wsretry" (upstream's page waited for "done", which
its server never sends, and so reconnected forever). Pure: no I/O."""

from __future__ import annotations

import html
import json
from urllib.parse import urlencode, urlsplit

TICKET_PARAMETER = "ticket"

_SCRIPT = r"""
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("config").textContent);
  var output = document.getElementById("output");
  var state = document.getElementById("state");
  var opened = Date.now();
  function show(word, text) {
    document.body.setAttribute("data-state", word);
    state.textContent = text;
  }
  function show_text(text) {
    var atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
    output.appendChild(document.createTextNode(text));
    if (atEnd) { window.scrollTo(0, document.body.scrollHeight); }
  }
  function connect() {
    if (Date.now() - opened > (config.ticketSeconds - 30) * 1000) {
      window.location.reload();  // a fresh ticket
      return;
    }
    // A message that looks like the in-band close is one only if the close follows it:
    // output that happens to start so is shown once another message comes.
    var held = null;
    var socket = new WebSocket(config.url, ["taskfn.close.v1"]);
    socket.onopen = function () {
      output.textContent = "";  // each connection sends the output from its start
      show("streaming", "following the output live");
    };
    socket.onmessage = function (event) {
      var data = typeof event.data === "string" ? event.data : "";
      if (held !== null) { show_text(held); held = null; }
      if (data.indexOf("\u0000close ") === 0) { held = data; return; }
      show_text(data);
    };
    socket.onclose = function (event) {
      var inBand = held === null ? "" : held.slice(7).split(" ").slice(1).join(" ");
      var reason = event.reason || inBand;
      if (reason === "wsdone") {
        show("done", "finished");
      } else if (event.code === 1000 && !reason) {
        show("gone", "no such job");
      } else {
        show("retrying", "waiting for the job (" + (reason || "connection lost") +
             "); trying again in 5 s");
        window.setTimeout(connect, 5000);
      }
    };
  }
  connect();
})();
"""

_STYLE = """
body { margin: 0; font: 14px/1.4 ui-monospace, Menlo, Consolas, monospace;
       background: #111; color: #ddd; }
header { position: sticky; top: 0; padding: .5em 1em; background: #222; color: #aaa; }
pre { margin: 0; padding: 1em; white-space: pre-wrap; word-break: break-all; }
"""


def socket_url(ws_url: str, task_id: str, job_id: str, execution_id: str = "",
               ticket: str = "") -> str:
    """The WebSocket API's URL for one job (its last execution) or one execution, in the
    query form API Gateway's WebSocket API takes."""
    query = {"task": task_id, "job": job_id}
    if execution_id:
        query["execution"] = execution_id
    if ticket:
        query[TICKET_PARAMETER] = ticket
    return f"{ws_url}?{urlencode(query)}"


def _json_for_html(value: object) -> str:
    """JSON that cannot end the <script> element it sits in, whatever the ids hold."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def content_security_policy(ws_url: str, nonce: str) -> str:
    split = urlsplit(ws_url)
    origin = f"{split.scheme}://{split.netloc}" if split.scheme in ("ws", "wss") else "wss:"
    return (f"default-src 'none'; connect-src {origin}; script-src 'nonce-{nonce}'; "
            f"style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def page(*, task_id: str, job_id: str, execution_id: str, url: str, nonce: str,
         ticket_seconds: int) -> str:
    """The page: which output it follows (escaped), and the socket's URL in a JSON block."""
    what = f"{task_id} / {job_id}" + (f" / {execution_id}" if execution_id else "")
    config = {"url": url, "taskId": task_id, "jobId": job_id, "executionId": execution_id,
              "ticketSeconds": ticket_seconds}
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(what)} · output</title>"
        f"<style nonce=\"{nonce}\">{_STYLE}</style></head>"
        "<body data-state=\"connecting\">"
        f"<header><span id=\"what\">{html.escape(what)}</span> · "
        "<span id=\"state\">connecting</span></header>"
        "<pre id=\"output\"></pre>"
        f"<script type=\"application/json\" id=\"config\">{_json_for_html(config)}</script>"
        f"<script nonce=\"{nonce}\">{_SCRIPT}</script></body></html>\n")
