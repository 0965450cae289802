// The overview: the caller's counters (/v1/metrics) and the per-minute chart, redrawn as
// the task events bring completions.
import { get } from "./api.js";
import { chart } from "./chart.js";
import { el, errorBox, facts, section } from "./dom.js";
import * as events from "./events.js";

export async function render(view, _params, signal) {
  const counters = el("div");
  const holder = el("div", { id: "chart", className: "chart-holder" });
  const note = el("p", { className: "muted" });
  view.append(el("h1", {}, "Overview"), section("Now", counters),
              section("Tasks completed and failed per minute", holder, note));
  const draw = () => {
    holder.replaceChildren(chart(events.allCompletions()));
    holder.dataset.ready = events.isCaughtUp() ? "yes" : "no";
    note.textContent = events.isCaughtUp()
      ? "From the task events of the last hour (green: succeeded, red: failed). Live."
      : "Reading the task events…";
  };
  draw();
  let pending = null;  // at most one redraw a second, however many events come
  events.subscribe(() => {
    if (!pending) pending = setTimeout(() => { pending = null; draw(); }, 300);
  }, signal);
  const minute = setInterval(draw, 30_000);  // the window moves on with the clock
  signal.addEventListener("abort", () => { clearInterval(minute); clearTimeout(pending); });
  try {
    const m = await get("v1/metrics", { signal });
    counters.replaceChildren(facts([
      ["Pending tasks", m.pendingTasks], ["Tasks today", m.todayTasks],
      ["Completed tasks", m.completedTasks], ["Builds in progress", m.pendingBuilds],
      ["Active cells", m.activeNodes], ["Free cells", m.freeNodes], ["Busy cells", m.busyNodes],
    ]));
  } catch (error) {
    counters.replaceChildren(errorBox(error));
  }
}
