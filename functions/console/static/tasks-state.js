// One word for a task's state, from the freshest source: its latest task event (BBS state
// and `failed`), else the task list's status (the function's HTTP status, 0 until finished).
import * as events from "./events.js";

export function stateOf(item) {
  const task = events.view(item.id);
  if (task) {
    if (task.state === "Completed" || task.state === "Resolving") {
      return task.failed ? "failed" : "succeeded";
    }
    return task.state.toLowerCase();  // pending, running
  }
  if (!item.status) return "unfinished";
  return item.status < 400 ? "succeeded" : "failed";
}
