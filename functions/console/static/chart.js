// Tasks completed and failed per minute over the last hour, as a plain SVG bar chart (no
// library). Input: [{at: ms, failed}] from the task events (events.js).
const SVG = "http://www.w3.org/2000/svg";
const MINUTE = 60_000;

function node(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

export function buckets(completions, now = Date.now(), minutes = 60) {
  const end = Math.floor(now / MINUTE) * MINUTE;  // the current minute's start
  const start = end - (minutes - 1) * MINUTE;
  const counts = Array.from({ length: minutes }, (_, i) => ({ at: start + i * MINUTE,
                                                              succeeded: 0, failed: 0 }));
  for (const { at, failed } of completions) {
    const index = Math.floor((at - start) / MINUTE);
    if (index < 0 || index >= minutes) continue;
    counts[index][failed ? "failed" : "succeeded"] += 1;
  }
  return counts;
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export function chart(completions, { now = Date.now(), minutes = 60 } = {}) {
  const counts = buckets(completions, now, minutes);
  const width = 720, height = 220, left = 36, bottom = 28, top = 12;
  const plotHeight = height - bottom - top;
  const most = Math.max(1, ...counts.map((c) => c.succeeded + c.failed));
  const step = (width - left - 8) / minutes;
  const succeeded = counts.reduce((sum, c) => sum + c.succeeded, 0);
  const failed = counts.reduce((sum, c) => sum + c.failed, 0);
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
                            "data-succeeded": succeeded, "data-failed": failed });
  svg.append(node("title", {}, `Tasks per minute, last ${minutes} minutes: ` +
                                `${succeeded} succeeded, ${failed} failed`));
  const y = (value) => top + plotHeight - (value / most) * plotHeight;
  for (const value of [0, most]) {  // the scale: 0 and the busiest minute
    svg.append(node("line", { x1: left, x2: width - 4, y1: y(value), y2: y(value),
                              class: "grid" }));
    svg.append(node("text", { x: left - 6, y: y(value) + 4, class: "axis",
                              "text-anchor": "end" }, String(value)));
  }
  counts.forEach((count, i) => {
    const x = left + i * step + 1;
    const group = node("g", { "data-minute": new Date(count.at).toISOString() });
    group.append(node("title", {}, `${clock(count.at)}: ${count.succeeded} succeeded, ` +
                                   `${count.failed} failed`));
    const okTop = y(count.succeeded);
    if (count.succeeded) {
      group.append(node("rect", { x, width: step - 2, y: okTop, height: top + plotHeight - okTop,
                                  class: "succeeded" }));
    }
    if (count.failed) {
      const failTop = y(count.succeeded + count.failed);
      group.append(node("rect", { x, width: step - 2, y: failTop, height: okTop - failTop,
                                  class: "failed" }));
    }
    svg.append(group);
    if (i % 10 === 0 || i === minutes - 1) {
      const anchor = i === 0 ? "start" : i === minutes - 1 ? "end" : "middle";
      svg.append(node("text", { x: x + step / 2, y: height - 8, class: "axis",
                                "text-anchor": anchor }, clock(count.at)));
    }
  });
  return svg;
}
