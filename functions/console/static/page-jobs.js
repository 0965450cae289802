// fastlane's jobs: groups, a group's jobs, a job's executions, and an execution with its
// output followed live (livelog.js).
import { get, post, segment } from "./api.js";
import { badge, el, errorBox, facts, iso, link, section, table } from "./dom.js";
import { follow } from "./livelog.js";

const path = (...parts) => parts.map(segment).join("/");

export async function groups(view, _params, signal) {
  view.append(el("h1", {}, "Jobs"));
  const holder = el("div");
  view.append(holder);
  const load = async (page) => {
    try {
      const answer = await get(`tasks/?page=${page}`, { signal });
      const pager = el("p", { className: "pager" },
        answer.hasPrev ? el("button", { type: "button", on: { click: () => load(page - 1) } },
                            "← Newer") : null,
        ` page ${answer.page} of ${answer.pages} `,
        answer.hasNext ? el("button", { type: "button", on: { click: () => load(page + 1) } },
                            "Older →") : null);
      holder.replaceChildren(table([
        { title: "Group", cell: (g) => link(g.taskId, "jobs", g.taskId) },
        { title: "Jobs", cell: (g) => String(g.jobsCount) },
        { title: "Created", cell: (g) => iso(g.createdAt) },
        { title: "Last change", cell: (g) => iso(g.lastModifiedAt) },
      ], answer.items, { key: (g) => g.taskId, empty: "No jobs yet (POST /tasks/<name>)." }),
      pager);
    } catch (error) {
      holder.replaceChildren(error.status === 404 ? el("p", { className: "muted" }, "No jobs yet.")
                                                  : errorBox(error));
    }
  };
  await load(1);
}

export async function group(view, { task }, signal) {
  view.append(el("p", {}, link("← Jobs", "jobs")), el("h1", {}, "Group ", el("code", {}, task)));
  try {
    const answer = await get(`tasks/${path(task)}`, { signal });
    view.append(table([
      { title: "Job", cell: (j) => link(j.id, "jobs", task, j.id) },
      { title: "Created", cell: (j) => iso(j.createdAt) },
    ], answer.jobs || [], { key: (j) => j.id }));
  } catch (error) {
    view.append(errorBox(error));
  }
}

export async function job(view, { task, job: jobId }, signal) {
  const body = el("div", { id: "job" });
  const notice = el("div", { id: "notice" });  // a refused retry or stop: kept over refreshes
  view.append(el("p", {}, link(`← ${task}`, "jobs", task)),
              el("h1", {}, "Job ", el("code", {}, jobId)), notice, body);
  const load = async () => {
    try {
      const { job: j } = await get(`tasks/${path(task, "jobs", jobId)}`, { signal });
      const retry = el("button", { type: "button", on: { click: () => act("retry") } }, "Retry");
      const stop = el("button", { type: "button", on: { click: () => act("stop") } }, "Stop");
      body.replaceChildren(
        el("p", {}, retry, " ", stop),
        section("Details", facts([
          ["Image", j.image], ["Command", el("code", {}, j.command)],
          ["Scheduled", j.scheduled ? "yes" : "no"], ["Executions", String(j.executionCount)],
          ["Retries", String(j.metadata?.retries ?? 0)], ["Timeout", `${j.metadata?.timeout} s`],
          ["Created", iso(j.createdAt)]])),
        section("Executions", table([
          { title: "Execution", cell: (e) => link(e.executionId, "jobs", task, jobId, e.executionId) },
          { title: "Status", cell: (e) => badge(e.status) },
          { title: "Exit code", cell: (e) => (e.exitCode ?? "—").toString() },
          { title: "Started", cell: (e) => iso(e.startedAt) },
          { title: "Finished", cell: (e) => iso(e.finishedAt) },
        ], j.executions || [], { key: (e) => e.executionId, empty: "No execution yet." })));
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  };
  const act = async (what) => {
    notice.replaceChildren();
    try {
      await post(`tasks/${path(task, "jobs", jobId, what)}`, undefined, { as: "text" });
    } catch (error) {
      notice.append(errorBox(error));
      return;
    }
    load();
  };
  await load();
  const timer = setInterval(load, 3000);  // executions come and end: keep the list fresh
  signal.addEventListener("abort", () => clearInterval(timer));
}

export async function execution(view, { task, job: jobId, execution: id }, signal) {
  const details = el("div");
  const state = el("span", { id: "log-state", className: "muted" }, "connecting");
  const log = el("pre", { id: "log", className: "output log" });
  view.append(el("p", {}, link(`← job ${jobId}`, "jobs", task, jobId)),
              el("h1", {}, "Execution ", el("code", {}, id)), section("Details", details),
              section("Output (live)", el("p", {}, state), log));
  const load = async () => {
    try {
      const { execution: e } = await get(`tasks/${path(task, "jobs", jobId, "executions", id)}`,
                                         { signal });
      details.replaceChildren(facts([
        ["Status", badge(e.status)], ["Exit code", (e.exitCode ?? "—").toString()],
        ["Command", el("code", {}, e.command)], ["Image", e.image],
        ["Started", iso(e.startedAt)], ["Finished", iso(e.finishedAt)],
        ["Error", e.error || "—"]]));
    } catch (error) {
      details.replaceChildren(errorBox(error));
    }
  };
  await load();
  follow(task, jobId, id, {
    signal,
    onReset: () => log.replaceChildren(),
    onText: (text) => log.append(document.createTextNode(text)),
    onState: (word, detail) => {
      log.dataset.state = word;
      state.textContent = detail ? `${word}: ${detail}` : word;
      if (word === "done") load();
    },
  });
}
