// The task events stream (GET /v1/events/tasks.r1, server-sent events in one answer per
// request). EventSource cannot send an Authorization header, so this long-polls it with
// fetch and Last-Event-ID. It first replays what the platform keeps (from "0": up to 24 h),
// which gives every recent task's state and the completions the chart counts, then follows.
import { request } from "./api.js";

const views = new Map();        // task_guid -> the task's latest BBS view
const completions = new Map();  // task_guid -> {at: ms, failed}
const listeners = new Set();
let caughtUp = false;
let running = null;

const DONE = new Set(["Completed", "Resolving"]);

export function view(guid) { return views.get(guid); }
export function allCompletions() { return [...completions.values()]; }
export function isCaughtUp() { return caughtUp; }

// listener(name, task) for each event; ("caughtup") once the replay is over.
export function subscribe(listener, signal) {
  listeners.add(listener);
  signal?.addEventListener("abort", () => listeners.delete(listener));
}

function notify(name, task) {
  for (const listener of [...listeners]) {
    try { listener(name, task); } catch (error) { console.error(error); }
  }
}

export function parse(text) {  // SSE blocks -> [{id, event, data}]
  const found = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const item = { id: null, event: "message", data: [] };
    for (const line of block.split(/\r?\n/)) {
      const at = line.indexOf(":");
      if (at <= 0) continue;
      const field = line.slice(0, at);
      const value = line.slice(at + 1).replace(/^ /, "");
      if (field === "id") item.id = value;
      else if (field === "event") item.event = value;
      else if (field === "data") item.data.push(value);
    }
    if (item.id !== null || item.data.length) found.push(item);
  }
  return found;
}

function apply(name, data) {
  const task = name === "task_changed" ? data.after : data.task;
  if (!task || !task.task_guid) return;
  if (name === "task_removed") views.delete(task.task_guid);
  else views.set(task.task_guid, task);
  const before = name === "task_changed" ? data.before : null;
  // A completion counts once, at its first completion (events are at least once).
  if (DONE.has(task.state) && !(before && DONE.has(before.state)) &&
      !completions.has(task.task_guid)) {
    completions.set(task.task_guid, { at: Number(task.first_completed_at || task.updated_at) / 1e6,
                                      failed: Boolean(task.failed) });
  }
  notify(name, task);
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// An empty answer sooner than this (a server or proxy that does not wait) is not asked
// again at once: the follower never polls faster than once a second when nothing happens.
const EMPTY_MS = 1000;

async function follow(signal) {
  let last = "0";
  let failures = 0;
  while (!signal.aborted) {
    const asked = Date.now();
    try {
      // Replaying: wait=0, answered at once. Following: the platform's own wait (its
      // EVENTS_WAIT_S); a `wait` over it would be a 400 on every request.
      const text = await request("GET", caughtUp ? "v1/events/tasks.r1" : "v1/events/tasks.r1?wait=0",
                                 { headers: { "Last-Event-ID": last }, as: "text", signal });
      // The platform's answer always starts with `retry:` or `id:`: anything else (a proxy's
      // page answered 200) is a failure, retried later, not an empty answer asked again.
      if (!/^(retry|id|event|data):/m.test(text)) {
        throw new Error("the task events answer is not an event stream");
      }
      failures = 0;
      let events = 0;
      for (const item of parse(text)) {
        if (item.id) last = item.id;
        if (!item.data.length) continue;
        events += 1;
        apply(item.event, JSON.parse(item.data.join("\n")));
      }
      if (!caughtUp && events === 0) {
        caughtUp = true;
        notify("caughtup", null);
      } else if (caughtUp && events === 0 && Date.now() - asked < EMPTY_MS) {
        await pause(EMPTY_MS - (Date.now() - asked));
      }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      failures += 1;  // the network or the platform: try again, a little later each time
      await pause(Math.min(30, 2 ** failures) * 1000);
    }
  }
}

export function startFollowing() {
  if (running) return;
  running = new AbortController();
  follow(running.signal);
}

export function stopFollowing() {
  running?.abort();
  running = null;
  views.clear();
  completions.clear();
  caughtUp = false;
}
