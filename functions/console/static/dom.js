// DOM helpers. Data only ever becomes text (text nodes, textContent, attribute values set
// through setAttribute on a fixed list): nothing here parses HTML.
const ATTRIBUTES = new Set(["href", "type", "name", "value", "placeholder", "min", "max",
  "step", "rows", "cols", "for", "id", "title", "role", "colspan", "autocomplete", "required",
  "aria-label", "aria-live", "disabled", "checked", "selected", "spellcheck", "hidden"]);

// el("a", {href: "#/x", className: "c", data: {state: "s"}, on: {click: f}}, "text", node)
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "data") Object.entries(value).forEach(([k, v]) => { node.dataset[k] = v; });
    else if (key === "on") Object.entries(value).forEach(([k, f]) => node.addEventListener(k, f));
    else if (key === "href" && !String(value).startsWith("#/")) {
      throw new Error(`el: an href is a #/ route, not ${value}`);  // never javascript: or off-site
    } else if (ATTRIBUTES.has(key)) node.setAttribute(key, value === true ? "" : String(value));
    else throw new Error(`el: unknown property ${key}`);
  }
  append(node, ...children);
  return node;
}

export function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

// A table: columns [{title, cell(row) -> node|string}], rows; `key(row)` names each row.
export function table(columns, rows, { key, empty = "Nothing yet." } = {}) {
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", key ? { data: { key: key(row) } } : {});
    for (const column of columns) tr.append(el("td", {}, column.cell(row)));
    body.append(tr);
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: columns.length, className:
    "muted" }, empty)));
  return el("table", {}, el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c.title)))),
            body);
}

// Hash links: each part is encoded, so an id cannot add a path segment.
export function link(text, ...parts) {
  return el("a", { href: "#/" + parts.map(encodeURIComponent).join("/") }, text);
}

export function seconds(value) {  // GreenCloud's unix-second strings, "0" for never
  const n = Number(value);
  return n ? new Date(n * 1000).toLocaleString() : "—";
}

export function nanoseconds(value) {  // BBS's times
  const n = Number(value);
  return n ? new Date(n / 1e6).toLocaleString() : "—";
}

export function iso(value) {  // fastlane's and the node list's times
  if (!value) return "—";
  const date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : value + "Z");
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function badge(word) {
  return el("span", { className: `badge ${word}`, data: { state: word } }, word);
}

export function errorBox(error) {
  return el("p", { className: "error", role: "alert" }, String(error.message || error));
}

export function section(title, ...children) {
  return el("section", {}, el("h2", {}, title), ...children);
}

// A definition list from [label, value] pairs.
export function facts(pairs) {
  return el("dl", { className: "facts" }, pairs.map(([k, v]) => [el("dt", {}, k),
                                                               el("dd", {}, v)]));
}
