// Schedules with their next runs: the platform's (cron in an IANA zone; the next runs are
// computed here, cron.js) and fastlane's scheduled jobs (their next run from GET /status).
import { get } from "./api.js";
import { badge, el, errorBox, iso, link, section, table } from "./dom.js";
import { nextRuns } from "./cron.js";

function runs(schedule) {
  if (!schedule.active) return "— (paused)";
  try {
    const next = nextRuns(schedule.cron, schedule.timezone, 3);
    return el("ol", { className: "runs" }, next.map((ms) => el("li", {
      data: { at: new Date(ms).toISOString() } },
      new Date(ms).toLocaleString([], { timeZone: schedule.timezone, dateStyle: "medium",
                                        timeStyle: "short" }))));
  } catch (error) {
    return `— (${error.message})`;
  }
}

export async function render(view, _params, signal) {
  const platform = el("div", { id: "schedules" });
  const jobs = el("div", { id: "scheduled-jobs" });
  view.append(el("h1", {}, "Schedules"),
              section("Function schedules", platform,
                      el("p", { className: "muted" }, "Next runs in each schedule's time zone.")),
              section("Scheduled jobs (fastlane)", jobs));
  try {
    const page = await get("v1/scheduled/list?limit=999", { signal });
    platform.replaceChildren(table([
      { title: "Schedule", cell: (s) => el("code", {}, s.id) },
      { title: "Function", cell: (s) => link(s.functionId, "functions", s.functionId) },
      { title: "Cron", cell: (s) => el("code", {}, s.cron) },
      { title: "Time zone", cell: (s) => s.timezone },
      { title: "State", cell: (s) => badge(s.active ? "active" : "paused") },
      { title: "Description", cell: (s) => s.description },
      { title: "Next runs (local time of the zone)", cell: runs },
    ], page.results, { key: (s) => s.id, empty: "No schedules." }));
  } catch (error) {
    platform.replaceChildren(errorBox(error));
  }
  try {
    const status = await get("status", { signal });
    jobs.replaceChildren(table([
      { title: "Job", cell: (j) => (j.task?.id || j.taskId)
        ? link(j.id, "jobs", j.task?.id || j.taskId, j.id) : j.id },
      { title: "Command", cell: (j) => el("code", {}, j.command || "") },
      { title: "Next run", cell: (j) => iso(j.nextScheduledAt) },
    ], status.jobs?.scheduled || [], { key: (j) => j.id, empty: "No scheduled jobs." }));
  } catch (error) {
    jobs.replaceChildren(errorBox(error));
  }
}
