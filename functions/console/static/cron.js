// The next runs of a schedule: its 5-field Unix cron (the dialect the platform accepts and
// has already checked) in its IANA time zone, read through Intl, so daylight saving is the
// browser's tzdata. The schedule list does not say when a schedule runs next.
const NAMES = {
  month: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  dow: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};
const FIELDS = [["minute", 0, 59], ["hour", 0, 23], ["dom", 1, 31], ["month", 1, 12],
                ["dow", 0, 7]];

function value(text, field) {
  const names = NAMES[field];
  const at = names ? names.indexOf(text.toUpperCase()) : -1;
  if (at >= 0) return field === "month" ? at + 1 : at;
  if (!/^\d+$/.test(text)) throw new Error(`bad cron value ${text}`);
  return Number(text);
}

function expand(text, [field, low, high]) {
  const found = new Set();
  for (const part of text.split(",")) {
    const [range, stepText] = part.split("/");
    const step = stepText ? Number(stepText) : 1;
    let from = low, to = high;
    if (range !== "*") {
      const [a, b] = range.split("-");
      from = value(a, field);
      to = b === undefined ? (stepText ? high : from) : value(b, field);
    }
    if (field === "dow" && to < from) to += 7;  // fri-sun wraps
    for (let v = from; v <= to; v += step) found.add(field === "dow" ? v % 7 : v);
  }
  return found;
}

export function parse(expression) {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error("not a 5-field cron");
  const sets = parts.map((part, i) => expand(part, FIELDS[i]));
  return { minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
           domStar: parts[2].startsWith("*"), dowStar: parts[4].startsWith("*") };
}

const WEEKDAYS = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function clockIn(zone) {
  const format = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23",
    month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", weekday: "short" });
  return (ms) => {
    const f = {};
    for (const { type, value: v } of format.formatToParts(ms)) f[type] = v;
    return { month: Number(f.month), dom: Number(f.day), hour: Number(f.hour) % 24,
             minute: Number(f.minute), dow: WEEKDAYS[f.weekday] };
  };
}

function dayMatches(cron, f) {
  const dom = cron.dom.has(f.dom), dow = cron.dow.has(f.dow);
  if (!cron.domStar && !cron.dowStar) return dom || dow;  // Unix: either day
  return dom && dow;
}

// The next `count` run times (ms) after `from`; stops after a few years of nothing.
export function nextRuns(expression, zone, count = 3, from = Date.now()) {
  const cron = parse(expression);
  const fields = clockIn(zone);
  const runs = [];
  let t = Math.floor(from / 60_000) * 60_000 + 60_000;
  for (let steps = 0; runs.length < count && steps < 200_000; steps += 1) {
    const f = fields(t);
    if (!cron.month.has(f.month) || !dayMatches(cron, f) || !cron.hour.has(f.hour)) {
      t += (60 - f.minute) * 60_000;  // the next local hour
    } else if (!cron.minute.has(f.minute)) {
      t += 60_000;
    } else {
      runs.push(t);
      t += 60_000;
    }
  }
  return runs;
}
