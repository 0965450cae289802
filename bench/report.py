"""The Markdown summary of a run (bench/results/latest.md, which README.md includes).

It renders the JSON form of a run (dicts, not dataclasses), so a saved latest.json can be
rendered again without measuring anything.
"""

from __future__ import annotations

from typing import Any

from bench.machine import one_line

HEADER = "| figure | value | baseline | ratio | target | met |"
ALIGN = "|---|--:|--:|--:|---|:-:|"


def _cell(text: Any) -> str:
    """Table cells may not contain a pipe or a line break."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_number(value: float) -> str:
    """Few digits, as many as the size needs: 1,234 / 123 / 12.3 / 1.23 / 0.0123."""
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    """A value with its unit ("1,105 ms", "$0.0123", "3 requests"); "–" when missing."""
    if value is None:
        return "–"
    if unit == "$":
        return f"${value:.4g}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "requests" and float(value).is_integer():
        return f"{int(value)} request" + ("" if value == 1 else "s")
    number = format_number(value)
    return f"{number} {unit}" if unit else number


def format_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}"


def format_met(met: bool | None) -> str:
    if met is None:
        return "–"
    return "yes" if met else "**no**"


def _figure_row(figure: dict) -> str:
    unit = figure.get("unit", "")
    cells = [
        figure.get("name", ""),
        format_value(figure.get("value"), unit),
        format_value(figure.get("baseline"), unit),
        format_ratio(figure.get("ratio")),
        figure.get("target") or "–",
        format_met(figure.get("met")),
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def render_section(section: dict) -> str:
    """One section: title, summary, the table, what the baselines are, and the notes."""
    lines = [f"### {section.get('title') or section.get('key', '?')}", ""]
    error = (section.get("details") or {}).get("error")
    figures = section.get("figures") or []
    if error and not figures:
        lines.append(f"*not measured: {error}*")
        return "\n".join(lines)
    if section.get("summary"):
        lines += [section["summary"], ""]
    if figures:
        lines += [HEADER, ALIGN, *(_figure_row(figure) for figure in figures), ""]
        baselines = list(
            dict.fromkeys(f["baseline_name"] for f in figures if f.get("baseline_name"))
        )
        if baselines:
            label = "Baseline" if len(baselines) == 1 else "Baselines"
            lines += [f"{label}: " + "; ".join(baselines) + ".", ""]
        notes = [f"- {f['name']}: {f['note']}" for f in figures if f.get("note")]
        if notes:
            lines += [*notes, ""]
    for table in (section.get("details") or {}).get("tables") or []:
        lines += render_table(table)
    return "\n".join(lines).rstrip()


def render_table(table: dict) -> list[str]:
    """A section's extra table ({title, columns, rows}), e.g. a cost breakdown line by line."""
    columns = table.get("columns") or []
    lines = [f"{table['title']}:", ""] if table.get("title") else []
    lines += ["| " + " | ".join(_cell(c) for c in columns) + " |",
              "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.get("rows", [])]
    return [*lines, ""]


def render(result: dict) -> str:
    """The whole run: a heading with date, machine and commit, then every section."""
    commit = str(result.get("commit", "unknown"))
    short = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
    run_kind = []
    if result.get("quick"):
        run_kind.append("quick run: fewer samples, a smoke test")
    if result.get("only"):
        run_kind.append("only " + ", ".join(result["only"]))
    lines = [
        "## Benchmarks",
        "",
        f"Measured {result.get('date', '?')} on {one_line(result.get('machine') or {})}; "
        f"commit `{short}`" + (f" ({'; '.join(run_kind)})" if run_kind else "") + ".",
        "",
        "Each ratio is value ÷ baseline, both measured in this run on this machine (shared "
        "and noisy, so only ratios compare across runs). The JSON file beside this one has "
        "every sample; `make bench` measures again.",
    ]
    for update in result.get("updates") or []:
        lines += ["", f"Measured again {update.get('date', '?')} at commit "
                      f"`{str(update.get('commit', '?'))[:12]}`: "
                      + ", ".join(update.get("sections") or []) + "."]
    for section in result.get("sections") or []:
        lines += ["", render_section(section)]
    return "\n".join(lines) + "\n"
