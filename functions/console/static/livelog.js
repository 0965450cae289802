// A job execution's output, live, over fastlane's WebSocket. A browser sends no
// Authorization header on a WebSocket and cannot read a 307's Location from fetch, so the
// ticketed socket URL is read from the execution's stream page (…/stream, fetched with the
// token): its config's JSON block, read as text and parsed as JSON; nothing of that page is
// parsed as HTML here, nor run.
import { get, segment } from "./api.js";

const path = (...parts) => parts.map(segment).join("/");

async function socketUrl(taskId, jobId, executionId) {
  const html = await get(`tasks/${path(taskId)}/jobs/${path(jobId)}/executions/` +
                         `${path(executionId)}/stream`, { as: "text" });
  // The block's JSON escapes "<", so the first "</script>" after it is its end.
  const found = /<script type="application\/json" id="config">([^<]*)<\/script>/.exec(html);
  if (!found) throw new Error("the stream page has no socket URL");
  // Only a WebSocket URL (the page's CSP then allows the WebSocket API's origin only): not
  // an http(s) one (a browser would take it as ws), nor anything that is no URL at all.
  let address;
  try {
    address = new URL(JSON.parse(found[1]).url);
  } catch (_) {
    throw new Error("the stream page's socket URL is not a URL");
  }
  if (address.protocol !== "wss:" && address.protocol !== "ws:") {
    throw new Error("the stream page's socket URL is not a WebSocket URL");
  }
  return address.toString();
}

// onText(text) for each piece of output (the whole output again after a reconnect: onReset
// first), onState(word, detail): connecting, streaming, done, retrying, gone, error.
export function follow(taskId, jobId, executionId, { onText, onReset, onState, signal }) {
  let socket = null;
  let timer = null;
  signal.addEventListener("abort", () => { clearTimeout(timer); socket?.close(); });

  async function connect() {
    if (signal.aborted) return;
    onState("connecting", "");
    let address;
    try {
      address = await socketUrl(taskId, jobId, executionId);
    } catch (error) {
      if (signal.aborted) return;
      // The platform or the network failing for a moment (5xx, no answer): as a lost
      // connection, again in 5 s. Anything else (404, a page without a socket URL) is final.
      if (error.status >= 500 || error instanceof TypeError) {
        onState("retrying", error.message);
        timer = setTimeout(connect, 5000);
      } else {
        onState("error", error.message);
      }
      return;
    }
    if (signal.aborted) return;
    let held = null;  // output that looks like the in-band close is one only if a close follows
    try {
      socket = new WebSocket(address, ["taskfn.close.v1"]);
    } catch (error) {
      onState("error", error.message);
      return;
    }
    socket.onopen = () => { onReset(); onState("streaming", ""); };
    socket.onmessage = (event) => {
      const data = typeof event.data === "string" ? event.data : "";
      if (held !== null) { onText(held); held = null; }
      if (data.startsWith("\u0000close ")) { held = data; return; }
      onText(data);
    };
    socket.onclose = (event) => {
      if (signal.aborted) return;
      const inBand = held === null ? "" : held.slice(7).split(" ").slice(1).join(" ");
      const reason = event.reason || inBand;
      if (reason === "wsdone") onState("done", "");
      else if (event.code === 1000 && !reason) onState("gone", "no such job");
      else {
        onState("retrying", reason || "connection lost");
        timer = setTimeout(connect, 5000);  // a fresh ticket each time
      }
    };
  }
  connect();
}
