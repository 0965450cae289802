// Tasks: a live list (the newest page, updated from the task events without a reload) and a
// task's detail: progress, result, stdout/stderr and attempts. Everything a function
// returned is shown as text.
import { ApiError, cell, get, request, segment } from "./api.js";
import { badge, el, errorBox, facts, link, nanoseconds, section, seconds, table } from "./dom.js";
import * as events from "./events.js";
import { stateOf } from "./tasks-state.js";

const enc = segment;  // API path segments
const FILTERS = [["", "all"], ["pending", "unfinished"], ["succeeded", "succeeded"],
                 ["failed", "failed"]];

// The list does not name a task's function: its events do (function_id), for 24 h.
function row(item, names) {
  const state = stateOf(item);
  const task = events.view(item.id);
  const fid = task?.function_id;
  // A Cell API task (its own domain) has no HTTP status: its cell completed it.
  const status = task && task.domain !== "taskfn" ? "—" : (item.status ? String(item.status) : "—");
  return el("tr", { data: { key: item.id, state } },
    el("td", {}, link(item.id, "tasks", item.id)),
    el("td", {}, fid ? link(names.get(fid) || fid, "functions", fid) : "—"),
    el("td", {}, badge(state)),
    el("td", {}, status),
    el("td", {}, el("progress", { max: 100, value: item.progress || 0 }), ` ${item.progress || 0}%`),
    el("td", {}, seconds(item.issued)));
}

export async function list(view, _params, signal) {
  const filter = el("select", { name: "status", "aria-label": "Status" },
    FILTERS.map(([value, label]) => el("option", { value }, label)));
  const body = el("tbody", { id: "task-rows" });
  const problem = el("div");
  view.append(el("h1", {}, "Tasks ", el("span", { className: "live-dot", title: "live" })),
    el("p", {}, "Show ", filter, el("span", { className: "muted" },
      " · updated live from the task events")),
    problem,
    el("table", { id: "tasks" }, el("thead", {}, el("tr", {}, ["Task", "Function", "State",
      "Status", "Progress", "Issued"].map((title) => el("th", {}, title)))), body));
  let items = [];  // the last page read, plus tasks the events announced since
  const names = new Map();
  get("v1/function/list?limit=200", { signal })
    .then((list) => { list.forEach((f) => names.set(f.id, f.name)); draw(); })
    .catch(() => {});
  const draw = () => {
    const wanted = filter.value;
    const shown = items.filter((item) => !wanted || (wanted === "pending"
      ? ["pending", "running", "unfinished"].includes(stateOf(item)) : stateOf(item) === wanted));
    body.replaceChildren(...shown.map((item) => row(item, names)));
    if (!shown.length) body.append(el("tr", {}, el("td", { colspan: 6, className: "muted" },
                                                    "No tasks.")));
  };
  const load = async () => {
    try {
      const page = await get("v1/task/list?limit=50", { signal });
      const known = new Set(page.map((item) => item.id));
      // Tasks an event announced that the (eventually consistent) list does not have yet.
      items = [...items.filter((item) => item.fromEvent && !known.has(item.id)), ...page];
      problem.replaceChildren();
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
    draw();
  };
  let reload = null;  // events come in bursts: read the list again once per burst
  events.subscribe((name, task) => {
    if (task && name === "task_created" && !items.some((item) => item.id === task.task_guid)) {
      items.unshift({ id: task.task_guid, issued: String(Math.floor(task.created_at / 1e9)),
                      progress: 0, status: 0, fromEvent: true });
    }
    draw();
    if (!reload) reload = setTimeout(() => { reload = null; load(); }, 700);
  }, signal);
  signal.addEventListener("abort", () => clearTimeout(reload));
  filter.addEventListener("change", draw);
  await load();
}

// The result as the function answered it, as text; 404 until it has finished.
async function result(id, signal) {
  const response = await request("GET", `v1/task/${enc(id)}/result`,
                                 { as: "response", signal, redirect: "manual" });
  if (response.type === "opaqueredirect") {
    return { note: "A large result (over 4 MiB): read it with `taskfn` or curl, which follow " +
                   "the link to S3." };
  }
  if (response.status === 404) return null;
  return { status: response.status, type: response.headers.get("Content-Type") || "",
           text: await response.text() };
}

function output(id, label, text, dropped) {
  return el("div", {}, el("h3", {}, label, dropped ? ` (${dropped} bytes dropped)` : ""),
            el("pre", { id, className: "output" }, text || ""));
}

function attempts(task) {
  const list = task?.attempts || [];
  if (!list.length) return el("p", { className: "muted" }, task?.retries
    ? `No failed attempt yet (up to ${task.retries} retries).` : "One attempt (no retries).");
  return table([
    { title: "Attempt", cell: (a) => String(a.attempt) },
    { title: "Cell", cell: (a) => a.cell_id || "—" },
    { title: "Started", cell: (a) => nanoseconds(a.started_at) },
    { title: "Finished", cell: (a) => nanoseconds(a.finished_at) },
    { title: "Failure", cell: (a) => a.failure_reason || "—" },
  ], list);
}

function wordOf(bbs) {  // BBS's state, with a finished task's outcome
  if (bbs.state === "Completed" || bbs.state === "Resolving") {
    return bbs.failed ? "failed" : "succeeded";
  }
  return bbs.state.toLowerCase();
}

export async function detail(view, { id }, signal) {
  const head = el("h1", {}, "Task ", el("code", {}, id));
  const problem = el("div", { id: "problem" });  // the last read's failure, above what it read
  const body = el("div", { id: "task" });
  view.append(el("p", {}, link("← Tasks", "tasks")), head, problem, body);
  let timer = null;
  let finished = false;
  let failures = 0;
  const names = new Map();
  const load = async () => {
    clearTimeout(timer);
    try {
      const [task, bbs] = await Promise.all([
        get(`v1/task/${enc(id)}`, { signal }),
        cell("get_by_task_guid.r3", { task_guid: id }).then((a) => a.task).catch(() => null),
      ]);
      finished = task.finished !== "0";
      if (task.functionId && !names.has(task.functionId)) {  // its name, read once
        names.set(task.functionId, (await get(`v1/function/${enc(task.functionId)}`, { signal })
          .catch(() => ({}))).name);
      }
      const word = bbs ? wordOf(bbs) : (finished ? "finished" : "unfinished");
      const parts = [
        el("p", {}, badge(word), " ", el("progress", { id: "progress", max: 100,
          value: task.progress }), ` ${task.progress}%`),
        section("Details", facts([
          ["Function", task.functionId ? link(names.get(task.functionId) || task.functionId,
                                              "functions", task.functionId) : "—"],
          ["Issued", seconds(task.issued)], ["Started", seconds(task.assigned)],
          ["Finished", seconds(task.finished)], ["Node", task.node || "—"],
          ["Timeout", `${task.timeout} s`],
          ["Triggered by", task.triggeredBy ? link(task.triggeredBy, "tasks", task.triggeredBy) : "—"],
          ["Failure", bbs?.failure_reason || "—"],
          // A Cell API task's own result (BBS's result_file): what its cell completed it with.
          bbs && bbs.domain !== "taskfn" ? ["Cell API result", bbs.result || "—"] : null,
        ].filter(Boolean))),
        section("Attempts", attempts(bbs)),
      ];
      if (finished) {
        const [answer, logs] = await Promise.all([
          result(id, signal),
          get(`v1/task/${enc(id)}/logs`, { signal }).catch((error) => ({ error })),
        ]);
        parts.push(section("Result", answer?.note ? el("p", {}, answer.note) : el("div", {},
          el("p", { className: "muted" }, `HTTP ${answer?.status} · ${answer?.type}`),
          el("pre", { id: "result", className: "output" }, answer?.text ?? ""))));
        parts.push(section("Logs", logs.error ? errorBox(logs.error) : [
          output("stdout", "stdout", logs.stdout, logs.stdoutDropped),
          output("stderr", "stderr", logs.stderr, logs.stderrDropped)]));
      } else {
        parts.push(section("Result", el("p", { className: "muted", id: "waiting" },
                                         "Not finished yet: this page follows it.")));
      }
      body.replaceChildren(...parts);
      body.dataset.state = word;
      problem.replaceChildren();
      failures = 0;
    } catch (error) {
      if (signal.aborted) return;
      const gone = error instanceof ApiError && error.status === 404;
      problem.replaceChildren(errorBox(gone ? new Error("No such task (or not yours).") : error));
      // The network or the platform failing for a while: read it again, later each time (a
      // finished task has no more events to wake this page).
      if (!gone) timer = setTimeout(load, Math.min(30, 2 ** failures++) * 1000);
      return;
    }
    // Progress is not an event: while it runs, read the task again every second or so.
    if (!finished && !signal.aborted) timer = setTimeout(load, 1000);
  };
  events.subscribe((_name, task) => { if (task?.task_guid === id) load(); }, signal);
  signal.addEventListener("abort", () => clearTimeout(timer));
  await load();
}
