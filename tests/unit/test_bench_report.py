"""The benchmark suite's own logic: rendering, percentiles, import-time parsing, and a runner
that survives missing or failing benchmark modules. No benchmark is run here."""

from __future__ import annotations

import json
import sys
import types

import pytest

from bench import report, run
from bench.common import Figure, Section, percentile
from bench.run import Benchmark

MACHINE = {
    "cpu": "Test CPU 9000",
    "cores": 2,
    "memory_gb": 8.0,
    "python": "3.13.0",
    "os": "Linux",
    "kernel": "6.1.0",
    "load_average": [0.5, 0.4, 0.3],
}


def _result(*sections: dict, **extra: object) -> dict:
    return {
        "date": "2026-01-02T03:04:05+00:00",
        "machine": MACHINE,
        "commit": "0123456789abcdef0123456789abcdef01234567+dirty",
        "sections": list(sections),
        **extra,
    }


def _cold_start() -> Section:
    return Section(
        key="cold_start",
        title="Cold start",
        summary="Two handlers.",
        figures=[
            Figure("cold start: A", 1105.2, "ms", 645.0, "boto3 + client", "ratio <= 1.2", False),
            Figure("cold start: B", 710.0, "ms", 645.0, "boto3 + client", "ratio <= 1.2", True),
            Figure("p50", 12.5, "ms", None, note="no target | queueing"),
        ],
    )


# --- percentile ------------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    values = list(range(100, 0, -1))  # unsorted on purpose
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    # the smallest value with at least p% of the values at or below it
    assert [percentile([1, 2, 3, 4], p) for p in (25, 26, 50, 51, 75, 76)] == [1, 2, 2, 3, 3, 4]
    assert percentile(values, 7) == 7  # no float noise: 7 / 100 * 100 > 7


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.0], 50) == 7.0
    assert percentile([7.0], 99) == 7.0


# --- rendering -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (1105.2, "ms", "1,105 ms"),
        (64.44, "ms", "64.4 ms"),
        (6.456, "tasks/s", "6.46 tasks/s"),
        (0.01234, "$", "$0.01234"),
        (3.0, "requests", "3 requests"),
        (1, "requests", "1 request"),
        (None, "ms", "–"),
        (0.0, "MB", "0 MB"),
    ],
)
def test_format_value(value, unit, text):
    assert report.format_value(value, unit) == text


def test_render_has_heading_machine_and_one_table_row_per_figure():
    markdown = report.render(_result(_cold_start().as_dict()))
    lines = markdown.splitlines()
    assert lines[0] == "## Benchmarks"
    assert "2026-01-02T03:04:05+00:00" in markdown
    assert "Test CPU 9000, 2 cores, 8 GB RAM, Python 3.13.0, Linux 6.1.0" in markdown
    assert "`0123456789ab+dirty`" in markdown
    assert "### Cold start" in lines
    assert "Two handlers." in lines
    assert report.HEADER in lines
    assert "| cold start: A | 1,105 ms | 645 ms | 1.71 | ratio <= 1.2 | **no** |" in lines
    assert "| cold start: B | 710 ms | 645 ms | 1.10 | ratio <= 1.2 | yes |" in lines
    assert "| p50 | 12.5 ms | – | – | – | – |" in lines
    assert "Baseline: boto3 + client." in lines
    assert "- p50: no target | queueing" in lines  # notes are not cells: no escaping


def test_render_escapes_pipes_in_cells():
    section = Section("x", "X", figures=[Figure("a|b", 1.0, "ms")])
    assert "| a\\|b | 1.00 ms |" in report.render(_result(section.as_dict()))


def test_render_says_what_was_not_measured_and_marks_quick_runs():
    missing = run.not_measured(Benchmark("cost", "bench.cost", "Cost"), "boom")
    markdown = report.render(_result(missing.as_dict(), quick=True, only=["cost"]))
    assert "### Cost" in markdown
    assert "*not measured: boom*" in markdown
    assert "quick run" in markdown
    assert "only cost" in markdown
    assert report.HEADER not in markdown


# --- the runner ------------------------------------------------------------------------


def _fake_module(monkeypatch, name: str, **attributes: object) -> None:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_a_missing_module_is_not_measured(monkeypatch):
    monkeypatch.delitem(sys.modules, "bench.no_such_benchmark", raising=False)
    section = run.run_benchmark(
        Benchmark("nope", "bench.no_such_benchmark", "Nope"), quick=True, previous=[]
    )
    assert section.key == "nope"
    assert section.figures == []
    assert section.summary == "not measured: bench.no_such_benchmark does not exist yet"
    assert section.details["error"] == "bench.no_such_benchmark does not exist yet"


def test_a_raising_measure_is_not_measured(monkeypatch, capsys):
    def measure(quick=False):
        raise RuntimeError("moto did not start")

    _fake_module(monkeypatch, "bench_fake_raising", measure=measure)
    section = run.run_benchmark(
        Benchmark("raising", "bench_fake_raising", "Raising"), quick=True, previous=[]
    )
    assert section.summary == "not measured: RuntimeError: moto did not start"
    assert "moto did not start" in capsys.readouterr().err  # the traceback, for whoever fixes it


def test_a_module_that_fails_to_import_or_has_no_measure_is_not_measured(monkeypatch):
    monkeypatch.delitem(sys.modules, "bench_fake_broken", raising=False)
    _fake_module(monkeypatch, "bench_fake_empty")
    empty = run.run_benchmark(Benchmark("e", "bench_fake_empty", "E"), quick=True, previous=[])
    assert empty.summary == "not measured: bench_fake_empty has no measure()"

    def measure(quick=False):
        return {"not": "a section"}

    _fake_module(monkeypatch, "bench_fake_dict", measure=measure)
    wrong = run.run_benchmark(Benchmark("d", "bench_fake_dict", "D"), quick=True, previous=[])
    assert wrong.summary == "not measured: measure() returned dict, not a Section"


def test_run_goes_on_after_failures_and_passes_earlier_sections_to_cost(monkeypatch):
    seen: dict[str, object] = {}

    def ok(quick=False):
        seen["quick"] = quick
        return Section("ok", "OK", figures=[Figure("f", 2.0, "ms", 1.0)])

    def boom(quick=False):
        raise ValueError("no")

    def cost(quick=False, sections=()):
        seen["sections"] = [section.key for section in sections]
        return Section("cost", "Cost")

    _fake_module(monkeypatch, "bench_fake_ok", measure=ok)
    _fake_module(monkeypatch, "bench_fake_boom", measure=boom)
    _fake_module(monkeypatch, "bench_fake_cost", measure=cost)
    benchmarks = [
        Benchmark("ok", "bench_fake_ok", "OK"),
        Benchmark("boom", "bench_fake_boom", "Boom"),
        Benchmark("gone", "bench.gone_for_good", "Gone"),
        Benchmark("cost", "bench_fake_cost", "Cost"),
    ]
    result = run.run(benchmarks, quick=True)

    assert seen == {"quick": True, "sections": ["ok", "boom", "gone"]}
    keys = [section["key"] for section in result["sections"]]
    assert keys == ["ok", "boom", "gone", "cost"]
    assert result["sections"][0]["figures"][0]["ratio"] == 2.0
    assert result["sections"][1]["summary"] == "not measured: ValueError: no"
    assert {"date", "machine", "commit", "sections"} <= result.keys()
    assert result["machine"]["cores"] >= 1


def test_main_writes_json_and_markdown_and_prints_the_markdown(monkeypatch, tmp_path, capsys):
    def measure(quick=False):
        return Section("ok", "OK", figures=[Figure("f", 2.0, "ms", 1.0, "floor", "ratio <= 3")])

    _fake_module(monkeypatch, "bench_fake_main", measure=measure)
    monkeypatch.setattr(
        run,
        "BENCHMARKS",
        (Benchmark("ok", "bench_fake_main", "OK"), Benchmark("x", "bench.not_here", "X")),
    )
    assert run.main(["--quick", "--only", "ok,not_here", "--output-dir", str(tmp_path)]) == 0

    saved = json.loads((tmp_path / "quick.json").read_text())
    assert saved["quick"] is True
    assert saved["only"] == ["ok", "x"]
    assert [s["key"] for s in saved["sections"]] == ["ok", "x"]
    markdown = (tmp_path / "quick.md").read_text()
    assert "| f | 2.00 ms | 1.00 ms | 2.00 | ratio <= 3 | – |" in markdown
    assert "*not measured: bench.not_here does not exist yet*" in markdown
    assert markdown in capsys.readouterr().out
    assert not (tmp_path / "latest.json").exists()  # a smoke test never replaces real numbers


def test_only_rejects_unknown_keys():
    with pytest.raises(SystemExit, match="unknown --only"):
        run.select("cold_start,warp_speed")
    assert [b.key for b in run.select("coldstart,end_to_end")] == ["cold_start", "end_to_end"]


# --- what a handler's import time is spent on ------------------------------------------


def test_import_breakdown_sums_self_time_per_package_and_knows_who_imported_it():
    from bench.coldstart import MARKER, import_breakdown

    # -X importtime: children first, one level deeper; "self | cumulative | name".
    handler = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       900 |        900 | site",
            MARKER,
            "import time:      3000 |       3000 |       botocore.utils",
            "import time:      1000 |       4000 |     botocore",
            "import time:      2000 |       2000 |     pydantic",
            "import time:       500 |       6500 |   taskfn.api",
            "import time:       200 |       6700 | create_task",
        ]
    )
    baseline = "\n".join(
        [
            MARKER,
            "import time:      3500 |       3500 |     botocore",
            "import time:       100 |       3600 | boto3",
        ]
    )
    result = import_breakdown(handler, baseline=baseline, top=3)
    assert result["total_ms"] == 6.7  # before the marker does not count
    assert result["top_packages"] == [
        {
            "package": "botocore",
            "self_ms": 4.0,
            "cumulative_ms": 4.0,
            "via": "create_task > taskfn",
        },
        {
            "package": "pydantic",
            "self_ms": 2.0,
            "cumulative_ms": 2.0,
            "via": "create_task > taskfn",
        },
        {"package": "taskfn", "self_ms": 0.5, "cumulative_ms": 6.5, "via": "create_task"},
    ]
    assert result["baseline_total_ms"] == 3.6
    extra = {item["package"]: item["extra_self_ms"] for item in result["over_baseline"]}
    assert extra == {"pydantic": 2.0, "taskfn": 0.5, "botocore": 0.5}  # the top 3 only


def test_readme_gets_the_summary_between_its_markers(tmp_path):
    from bench.run import README_END, README_START, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold numbers\n{README_END}\n\n## after\n")
    assert update_readme("## Benchmarks\n\nnew numbers\n", readme)
    text = readme.read_text()
    assert "old numbers" not in text and "new numbers" in text
    assert "## Benchmarks" not in text  # the README keeps its own heading
    assert text.endswith(f"{README_END}\n\n## after\n")
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert update_readme("x", plain) is False
    assert plain.read_text() == "no markers\n"


def test_the_cold_start_bench_starts_every_function_of_the_template():
    from bench.coldstart import BASELINE, _subjects
    from taskfn.local.template import load_template

    template = load_template()
    subjects = _subjects(template)
    assert subjects[0].name == BASELINE
    assert [s.name for s in subjects[1:]] == list(template.functions)


def test_a_cold_start_note_says_time_peak_and_what_is_beyond_the_floor():
    from bench.coldstart import _note

    handler = {"import_ms_median": 300.0, "peak_mb_median": 70.0}
    base = {"import_ms_median": 250.0, "peak_mb_median": 60.0}
    breakdown = {"over_baseline": [{"package": "pydantic", "extra_self_ms": 40.0, "via": ""}]}
    note = _note(handler, base, breakdown, met=False)
    assert "import alone 300 ms vs 250 ms" in note and "peak 70 MB vs 60 MB" in note
    assert "pydantic +40 ms" in note and "over the target" in note
