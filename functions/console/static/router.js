// Hash routes (#/tasks/<id>): the handler serves one page, so deep links need no server
// routes. Each page gets an AbortSignal that fires when the user leaves it, which stops
// its timers, long polls and sockets.
import { el } from "./dom.js";

const routes = [];
let leaving = null;

// route("/tasks/:id", render): render(view, params, signal)
export function route(pattern, render) {
  const names = [];
  const source = pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
  routes.push({ regex: new RegExp(`^${source}$`), names, render });
}

export function current() {
  return window.location.hash.replace(/^#/, "") || "/";
}

export async function show(view) {
  if (leaving) leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const path = current();
  for (const { regex, names, render } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = {};
    view.replaceChildren();
    document.body.dataset.page = path.split("/")[1] || "overview";
    try {  // a crafted link's bad escape (#/tasks/%E0%A4%A) is a page of its own, not a hang
      names.forEach((name, i) => { params[name] = decodeURIComponent(match[i + 1]); });
    } catch (_) {
      view.append(el("p", { className: "error", role: "alert" }, "No such page: ", path));
      return;
    }
    try {
      await render(view, params, signal);
    } catch (error) {  // a page's own slip: said on the page, not an unhandled rejection
      if (!signal.aborted) {
        console.error(error);
        view.append(el("p", { className: "error", role: "alert" }, String(error.message || error)));
      }
    }
    return;
  }
  window.location.hash = "#/";
}

// `allowed()` says whether pages may show (signed in): else the hash waits for sign-in.
export function start(view, allowed) {
  window.addEventListener("hashchange", () => { if (allowed()) show(view); });
  return show(view);
}

export function stop() {  // leave the current page (signing out): its work ends
  if (leaving) leaving.abort();
  leaving = null;
}
