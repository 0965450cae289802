// The console's entry: the sign-in gate, the navigation, and the routes of every page.
import { signOut, token } from "./api.js";
import * as events from "./events.js";
import * as router from "./router.js";
import * as functions from "./page-functions.js";
import * as jobs from "./page-jobs.js";
import * as nodes from "./page-nodes.js";
import * as overview from "./page-overview.js";
import * as schedules from "./page-schedules.js";
import * as signin from "./page-signin.js";
import * as tasks from "./page-tasks.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const signout = document.getElementById("signout");
const live = document.getElementById("live");

router.route("/", overview.render);
router.route("/functions", functions.list);
router.route("/functions/:id", functions.detail);
router.route("/tasks", tasks.list);
router.route("/tasks/:id", tasks.detail);
router.route("/jobs", jobs.groups);
router.route("/jobs/:task", jobs.group);
router.route("/jobs/:task/:job", jobs.job);
router.route("/jobs/:task/:job/:execution", jobs.execution);
router.route("/schedules", schedules.render);
router.route("/nodes", nodes.render);

let started = false;

function gate() {
  if (!token()) {
    nav.hidden = signout.hidden = live.hidden = true;
    document.body.dataset.state = "signed-out";
    signin.render(view, () => { document.body.dataset.state = "signed-in"; enter(); });
    return;
  }
  enter();
}

function enter() {
  nav.hidden = signout.hidden = live.hidden = false;
  document.body.dataset.state = "signed-in";
  events.startFollowing();
  live.textContent = "live";
  if (!started) {
    started = true;
    router.start(view, () => Boolean(token()));
  } else {
    router.show(view);
  }
}

function leave() {
  signOut();
  router.stop();
  events.stopFollowing();
  gate();
}

signout.addEventListener("click", leave);
// A token revoked meanwhile: back to the sign-in form.
window.addEventListener("taskfn:unauthorized", () => { if (token()) leave(); });
// Mark the current page in the navigation.
const mark = () => {
  const page = "#/" + (router.current().split("/")[1] || "");
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("current", a.getAttribute("href") === page);
  }
};
window.addEventListener("hashchange", mark);
mark();
gate();
