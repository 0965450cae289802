"""`python -m bench.run [--quick] [--only KEY[,KEY]]`: measure, write results, print Markdown.

A --only run replaces its sections in latest.json/latest.md and keeps the others (its
`updates` list says what was measured again, when and at which commit).

Benchmark modules are written by different people at different times, so a module that is
missing or fails becomes a section saying "not measured: <why>" and the run goes on. A full
run writes bench/results/latest.json and latest.md; a --quick run (a smoke test) writes
quick.json and quick.md, so it never replaces real numbers.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from bench import machine, report
from bench.common import Section

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


class Benchmark(NamedTuple):
    key: str  # the section key it produces
    module: str
    title: str


# In order: bench.cost last, since its model uses the figures measured before it.
BENCHMARKS = (
    Benchmark("cold_start", "bench.coldstart", "Cold start of every Lambda handler"),
    Benchmark("aws_requests", "bench.aws_requests", "AWS requests per operation"),
    Benchmark("executor", "bench.executor_overhead", "Executor overhead"),
    Benchmark("end_to_end", "bench.end_to_end", "End to end through the local stack"),
    Benchmark("convergence", "bench.convergence", "One convergence pass over 10,000 tasks"),
    Benchmark("contention", "bench.contention", "Start and complete under contention"),
    Benchmark("load", "bench.load", "Load: 50 clients for 60 s"),
    Benchmark("csv_export", "bench.csv_export", "CSV export of 100,000 tasks"),
    Benchmark("live_logs", "bench.live_logs", "Live logs: printed to received"),
    Benchmark("cost", "bench.cost", "Cost"),
)


def not_measured(benchmark: Benchmark, error: str) -> Section:
    """The section of a benchmark that could not run; the report says why."""
    return Section(
        key=benchmark.key,
        title=benchmark.title,
        summary=f"not measured: {error}",
        details={"error": error, "module": benchmark.module},
    )


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 300 else text[:297] + "..."


def run_benchmark(benchmark: Benchmark, quick: bool, previous: list[Section]) -> Section:
    """One benchmark's section, or a not-measured section; never raises (but Ctrl-C)."""
    try:
        module = importlib.import_module(benchmark.module)
    except ModuleNotFoundError as error:
        if error.name == benchmark.module:
            return not_measured(benchmark, f"{benchmark.module} does not exist yet")
        return not_measured(benchmark, _describe(error))
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return not_measured(benchmark, _describe(error))
    measure = getattr(module, "measure", None)
    if not callable(measure):
        return not_measured(benchmark, f"{benchmark.module} has no measure()")
    try:
        parameters = inspect.signature(measure).parameters
        if "sections" in parameters:
            section = measure(quick=quick, sections=list(previous))
        else:
            section = measure(quick=quick)
    except (Exception, SystemExit) as error:
        traceback.print_exc(file=sys.stderr)
        return not_measured(benchmark, _describe(error))
    if not isinstance(section, Section):
        return not_measured(
            benchmark, f"measure() returned {type(section).__name__}, not a Section"
        )
    return section


def select(only: str | None) -> list[Benchmark]:
    """The benchmarks named by --only (section keys or module names), in run order."""
    if not only:
        return list(BENCHMARKS)
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    chosen = [b for b in BENCHMARKS if b.key in wanted or b.module.rsplit(".", 1)[-1] in wanted]
    known = {b.key for b in chosen} | {b.module.rsplit(".", 1)[-1] for b in chosen}
    unknown = wanted - known
    if unknown:
        names = ", ".join(b.key for b in BENCHMARKS)
        raise SystemExit(f"bench: unknown --only {', '.join(sorted(unknown))} (known: {names})")
    return chosen


def run(benchmarks: Sequence[Benchmark], quick: bool = False) -> dict:
    """Measure each benchmark in turn; the JSON form of the whole run."""
    started = time.monotonic()
    result = {
        "date": machine.now(),
        "machine": machine.describe(),
        "commit": machine.git_commit(),
        "quick": quick,
        "only": None,
        "seconds": {},
        "sections": [],
    }
    sections: list[Section] = []
    for benchmark in benchmarks:
        print(f"bench: {benchmark.key} ({benchmark.module}) ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        section = run_benchmark(benchmark, quick, sections)
        took = round(time.monotonic() - began, 1)
        result["seconds"][benchmark.key] = took
        print(f"bench: {benchmark.key} done in {took} s", file=sys.stderr, flush=True)
        sections.append(section)
    result["sections"] = [section.as_dict() for section in sections]
    result["seconds"]["total"] = round(time.monotonic() - started, 1)
    return result


def merged(previous: dict, result: dict) -> dict:
    """A --only run folded into the full run before it: its sections replace those of the
    same key (the others are kept, in their order), and `updates` says which sections were
    measured again, at which commit, so no figure passes for what it is not."""
    fresh = {section["key"]: section for section in result["sections"]}
    sections = [fresh.pop(section["key"], section) for section in previous.get("sections", [])]
    update = {"sections": result["only"], "commit": result["commit"], "date": result["date"],
              "seconds": result["seconds"]}
    return {**previous, "sections": sections + list(fresh.values()),
            "updates": [*previous.get("updates", []), update]}


def write(result: dict, directory: Path, stem: str) -> tuple[Path, Path]:
    """<stem>.json and <stem>.md in directory; the Markdown is returned by render()."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(report.render(result))
    return json_path, md_path


def update_readme(markdown: str, readme: Path = README) -> bool:
    """Put the latest summary in README.md between its bench markers; False without them."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = markdown.strip()
    if body.startswith("## "):  # README has its own heading for the section
        body = body.split("\n", 1)[1].strip()
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke test")
    parser.add_argument("--only", metavar="KEY[,KEY]", help="only these sections")
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS, help="where results go (bench/results)"
    )
    args = parser.parse_args(argv)
    benchmarks = select(args.only)
    result = run(benchmarks, quick=args.quick)
    if args.only:
        result["only"] = [b.key for b in benchmarks]
        previous = args.output_dir / "latest.json"
        if not args.quick and previous.exists():  # the full run's other figures stay
            result = merged(json.loads(previous.read_text()), result)
    json_path, md_path = write(result, args.output_dir, "quick" if args.quick else "latest")
    markdown = report.render(result)
    print(markdown)
    print(f"bench: wrote {json_path} and {md_path}", file=sys.stderr)
    if not args.quick and not args.only and update_readme(markdown):
        print(f"bench: updated {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
