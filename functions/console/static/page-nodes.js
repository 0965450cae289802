// Cells: the nodes the caller registered (or, for an admin, the shared ones), with their
// state from their heartbeats; the built-in executor is not a node.
import { get } from "./api.js";
import { badge, el, errorBox, facts, iso, section, table } from "./dom.js";

function stateOf(node) {
  if (node.disabled) return "disabled";
  if (!node.available) return "offline";
  return node.busy ? "busy" : "free";
}

export async function render(view, _params, signal) {
  const counters = el("div");
  const nodes = el("div", { id: "nodes" });
  view.append(el("h1", {}, "Cells"), section("Now", counters), section("Nodes", nodes));
  const load = async () => {
    try {
      const [m, list] = await Promise.all([get("v1/metrics", { signal }),
                                           get("v1/node/list", { signal })]);
      counters.replaceChildren(facts([["Active", m.activeNodes], ["Free", m.freeNodes],
                                      ["Busy", m.busyNodes]]));
      nodes.replaceChildren(table([
        { title: "Node", cell: (n) => el("code", {}, n.hash) },
        { title: "State", cell: (n) => badge(stateOf(n)) },
        { title: "Running", cell: (n) => String(n.running) },
        { title: "Description", cell: (n) => n.description },
        { title: "Shared", cell: (n) => (n.shared ? "yes" : "no") },
        { title: "Privileged", cell: (n) => (n.privileged ? "yes" : "no") },
        { title: "Last heartbeat", cell: (n) => iso(n.lastHeartbeat) },
        { title: "Registered", cell: (n) => iso(n.createdAt) },
      ], list, { key: (n) => n.hash, empty: "No nodes: register one with POST /v1/node/{hash} " +
                                              "or taskfn cell --register." }));
    } catch (error) {
      nodes.replaceChildren(errorBox(error));
    }
  };
  await load();
  const timer = setInterval(load, 5000);  // heartbeats change state: no event says so
  signal.addEventListener("abort", () => clearInterval(timer));
}
