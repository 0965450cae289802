// Functions: the list, and one function's detail with its capabilities, pause and tasks.
import { get, post, segment } from "./api.js";
import { badge, el, errorBox, facts, link, section, seconds, table } from "./dom.js";
import { stateOf } from "./tasks-state.js";

const enc = segment;  // API path segments

export async function list(view, _params, signal) {
  view.append(el("h1", {}, "Functions"));
  try {
    const functions = await get("v1/function/list?limit=200", { signal });
    view.append(table([
      { title: "Name", cell: (f) => link(f.name || f.id, "functions", f.id) },
      { title: "Language", cell: (f) => f.lang },
      { title: "Description", cell: (f) => f.description },
      { title: "Tags", cell: (f) => (f.tags || []).map((t) => t.name).join(", ") },
      { title: "Created", cell: (f) => seconds(f.createdAt) },
    ], functions, { key: (f) => f.id, empty: "No functions yet: deploy one with taskfn fn deploy." }));
  } catch (error) {
    view.append(errorBox(error));
  }
}

function capabilitiesForm(id, capabilities) {
  const field = (name, label, props) => el("label", {}, label,
    el("input", { name, value: capabilities[name], type: "number", ...props }));
  const privileged = el("input", { type: "checkbox", name: "privileged",
                                   checked: capabilities.privileged });
  const status = el("span", { className: "muted", "aria-live": "polite" });
  const form = el("form", { id: "capabilities", className: "inline" },
    field("timeout", "Timeout (s)", { min: 10, max: 120 }),
    field("cpuCount", "CPUs", { min: 0, max: 4 }),
    field("memSize", "Memory (MB)", { min: 0, max: 2048 }),
    el("label", {}, privileged, " privileged"),
    el("button", { type: "submit" }, "Save"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = new FormData(form);
    const body = { timeout: Number(values.get("timeout")), cpuCount: Number(values.get("cpuCount")),
                   memSize: Number(values.get("memSize")), privileged: privileged.checked };
    status.replaceChildren("saving…");
    try {
      await post(`v1/function/${enc(id)}/capabilities`, body, { as: "text" });
      status.replaceChildren("saved (later tasks only)");
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function runForm(id) {
  const input = el("textarea", { name: "body", rows: 3, spellcheck: "false",
                                 placeholder: '{"name": "Ada"} (any JSON, or nothing)' });
  const status = el("span", { "aria-live": "polite" });
  const form = el("form", { id: "run" }, input, el("button", { type: "submit" }, "Run a task"),
                  status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      const text = input.value.trim();
      const answer = await post(`v1/task/${enc(id)}`, text || undefined);
      window.location.hash = `#/tasks/${encodeURIComponent(answer.id)}`;
    } catch (error) {
      status.append(errorBox(error));
    }
  });
  return form;
}

export async function detail(view, { id }, signal) {
  const head = el("div");
  const notice = el("div", { id: "notice" });  // what the last click got: kept over reloads
  const body = el("div");
  view.append(el("p", {}, link("← Functions", "functions")), head, notice, body);
  const load = async () => {
    let f, tasks;
    try {
      [f, tasks] = await Promise.all([
        get(`v1/function/${enc(id)}`, { signal }),
        get(`v1/task/list?functionId=${enc(id)}&limit=20`, { signal }),
      ]);
    } catch (error) {
      body.replaceChildren(errorBox(error));
      return;
    }
    const pause = el("button", { type: "button", id: "pause" }, f.paused ? "Resume" : "Pause");
    pause.addEventListener("click", async () => {
      pause.disabled = true;
      notice.replaceChildren();
      try {
        // The API toggles: a page shown before another tab (or user) paused it would resume
        // it with its "Pause". Toggle only from the state the button was showing.
        const now = await get(`v1/function/${enc(id)}`, { signal });
        if (Boolean(now.paused) === Boolean(f.paused)) {
          await post(`v1/function/${enc(id)}/togglePause`, undefined, { as: "text" });
        } else {
          notice.append(errorBox(new Error(`It was ${now.paused ? "paused" : "resumed"} ` +
            "meanwhile: nothing changed, here is how it is now.")));
        }
      } catch (error) {
        if (signal.aborted) return;
        notice.append(errorBox(error));
      }
      load();
    });
    head.replaceChildren(el("h1", {}, f.name, " ", badge(f.paused ? "paused" : "active")), pause);
    const m = f.metrics || {};
    body.replaceChildren(
      section("Details", facts([
        ["Id", f.id], ["Language", f.lang], ["Type", f.type], ["Description", f.description || "—"],
        ["URL", f.url || "—"], ["Build", f.buildId || "—"], ["Created", seconds(f.createdAt)],
        ["Tags", (f.tags || []).map((t) => t.name).join(", ") || "—"],
        ["Tasks today", m.todaysTasks], ["This week", m.weekTasks], ["Pending", m.pendingTasks],
        ["Completed", m.completedTasks],
      ])),
      section("Capabilities", capabilitiesForm(id, f.capabilities || {})),
      section("Run", runForm(id)),
      section("Recent tasks", table([
        { title: "Task", cell: (t) => link(t.id, "tasks", t.id) },
        { title: "State", cell: (t) => badge(stateOf(t)) },
        { title: "Status", cell: (t) => (t.status ? String(t.status) : "—") },
        { title: "Progress", cell: (t) => `${t.progress}%` },
        { title: "Issued", cell: (t) => seconds(t.issued) },
      ], tasks, { key: (t) => t.id })));
  };
  await load();
}
