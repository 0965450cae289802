"""Figure 1: the cold start of every Lambda handler, against boto3 + one client.

Lambda's init phase imports the handler module and runs its module scope (the clients are
built there). Each sample is a fresh `python -c` process doing exactly that with the
environment a Lambda has; the baseline is the least any handler of ours can do:
`import boto3; boto3.client("dynamodb")`. Handlers and baseline runs are interleaved in a
shuffled order per round, so the machine's noise falls on all of them alike.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Figure, Section, median
from taskfn.local.provision import (
    ACCOUNT_ID,
    NO_VALUE,
    REGION,
    Provisioned,
    physical_name,
)
from taskfn.local.template import FunctionSpec, Template, load_template

RUNS, QUICK_RUNS = 5, 3  # cold processes per handler: every function of the template (109)
TARGET_RATIO = 1.2
SAMPLE_TIMEOUT_S = 60.0
TOP_PACKAGES = 10
BASELINE = "baseline"
BASELINE_NAME = "python -c 'import boto3; boto3.client(\"dynamodb\")'"
MARKER = "--bench: handler import starts--"
# Nothing may reach AWS: an import that tries fails at once on the discard port.
DEAD_ENDPOINT = "http://127.0.0.1:9"

# The timed part of both snippets starts after the interpreter is up, so import_s is the
# handler's own init; the wall time of the whole process is what Lambda bills as init.
HANDLER_SNIPPET = """\
import sys, time
sys.stderr.write({marker!r} + "\\n")
started = time.perf_counter()
sys.path.insert(0, {code!r})
__import__({module!r})  # the import statement's path, so that -X importtime lists it
getattr(sys.modules[{module!r}], {attribute!r})
print("import_s", time.perf_counter() - started)
"""
BASELINE_SNIPPET = """\
import sys, time
sys.stderr.write({marker!r} + "\\n")
started = time.perf_counter()
import boto3
boto3.client("dynamodb")
print("import_s", time.perf_counter() - started)
"""


@dataclass
class Sample:
    wall_ms: float
    import_ms: float | None
    peak_mb: float
    error: str = ""


@dataclass
class Subject:
    """One thing started cold: a handler, or the baseline."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    module: str = ""
    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    def good(self) -> list[Sample]:
        return [sample for sample in self.samples if not sample.error]


# --- the environment of a Lambda --------------------------------------------------------


def _plausible_resources(template: Template) -> Provisioned:
    """Physical names as a deployed stack would have them, without creating anything."""
    refs: dict[str, str] = {}
    attrs: dict[tuple[str, str], str] = {}
    for logical_id, resource in template.resources.items():
        name = physical_name("taskfn-bench", logical_id)
        kind = resource.get("Type", "")
        if kind == "AWS::SQS::Queue":
            refs[logical_id] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            attrs[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
            attrs[(logical_id, "QueueName")] = name
        elif kind == "AWS::S3::Bucket":
            refs[logical_id] = name
            attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        elif kind == "AWS::DynamoDB::Table":
            refs[logical_id] = name
            attrs[(logical_id, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
        else:
            refs[logical_id] = name
            attrs[(logical_id, "Arn")] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
    return Provisioned(
        refs=refs,
        attrs=attrs,
        parameters=dict(template.parameters),
        conditions=template.conditions,
    )


def lambda_environment(spec: FunctionSpec, resources: Provisioned) -> dict[str, str]:
    """What Lambda sets for this function, with fake credentials and no reachable endpoint."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": DEAD_ENDPOINT,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_FUNCTION_NAME": physical_name("taskfn-bench", spec.logical_id),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
        }
    )
    for name, value in spec.environment.items():
        try:
            resolved = resources.resolve(value)
        except (KeyError, ValueError):
            continue
        if resolved is not NO_VALUE:
            env[name] = str(resolved)
    return env


def _subjects(template: Template) -> list[Subject]:
    """The baseline first, then every function of the template."""
    resources = _plausible_resources(template)
    subjects = []
    baseline_env: dict[str, str] | None = None
    for spec in template.functions.values():
        module, _, attribute = spec.handler.rpartition(".")
        env = lambda_environment(spec, resources)
        baseline_env = baseline_env or env
        code = HANDLER_SNIPPET.format(
            marker=MARKER, code=str(spec.code_uri), module=module, attribute=attribute
        )
        argv = [sys.executable, "-c", code]
        subjects.append(Subject(spec.logical_id, argv, env, spec.code_uri, module=module))
    baseline = Subject(
        BASELINE,
        [sys.executable, "-c", BASELINE_SNIPPET.format(marker=MARKER)],
        baseline_env or {},
        template.path.parent,
    )
    return [baseline, *subjects]


# --- one cold process -------------------------------------------------------------------


def _max_rss_mb(kilobytes: int) -> float:
    """ru_maxrss is KB on Linux, bytes on macOS."""
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return kilobytes / divisor


def run_cold(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Start one process, wait for it with wait4 (its own peak RSS), time it end to end."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        killer = threading.Timer(SAMPLE_TIMEOUT_S, process.kill)
        killer.start()
        try:
            assert process.stdout is not None
            output = process.stdout.read().decode(errors="replace")
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall_ms = (time.perf_counter() - started) * 1000
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    import_ms = None
    for line in output.splitlines():
        if line.startswith("import_s "):
            import_ms = float(line.split()[1]) * 1000
    error = ""
    if process.returncode != 0 or import_ms is None:
        last = [line for line in stderr.splitlines() if line.strip()][-1:] or ["no output"]
        error = f"exit {process.returncode}: {last[0][:300]}"
    return Sample(wall_ms, import_ms, _max_rss_mb(usage.ru_maxrss), error)


# --- what the import time is spent on ---------------------------------------------------


@dataclass
class _Import:
    depth: int
    name: str
    self_us: int
    cumulative_us: int
    children: list[_Import] = field(default_factory=list)


@dataclass
class _PackageTimes:
    self_us: dict[str, int]
    cumulative_us: dict[str, int]
    via: dict[str, str]
    total_us: int


def _package_times(stderr: str) -> _PackageTimes:
    """Parse `-X importtime` output (after MARKER if present) into times per package."""
    lines = stderr.splitlines()
    if MARKER in lines:
        lines = lines[lines.index(MARKER) + 1 :]
    stack: list[_Import] = []
    for line in lines:
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            self_text, cumulative_text, name_field = line.split(":", 1)[1].split("|", 2)
            node = _Import(
                depth=(len(name_field) - len(name_field.lstrip(" ")) - 1) // 2,
                name=name_field.strip(),
                self_us=int(self_text),
                cumulative_us=int(cumulative_text),
            )
        except ValueError:
            continue
        # -X importtime prints a module after its children, indented one level deeper.
        while stack and stack[-1].depth > node.depth:
            node.children.insert(0, stack.pop())
        stack.append(node)

    times = _PackageTimes(defaultdict(int), defaultdict(int), {}, 0)

    def visit(node: _Import, path: tuple[str, ...]) -> None:
        package = node.name.split(".", 1)[0]
        times.self_us[package] += node.self_us
        if package not in path:
            times.cumulative_us[package] += node.cumulative_us
            times.via.setdefault(package, " > ".join(path))
            path = (*path, package)
        for child in node.children:
            visit(child, path)

    for root in stack:
        visit(root, ())
    times.total_us = sum(root.cumulative_us for root in stack)
    return times


def import_breakdown(stderr: str, baseline: str = "", top: int = TOP_PACKAGES) -> dict:
    """The packages an import spends its time on, from `-X importtime` output.

    self_ms is the time in the package's own modules (these add up to the total; a handler
    module's self time is its module scope: building clients, the resolver); cumulative_ms
    is the time of its outermost imports, with what they pulled in; via is the chain of
    packages that first pulled it in. With the baseline's output, over_baseline lists what
    the handler spends beyond it, package by package: what there is to trim.
    """
    times = _package_times(stderr)
    ranked = sorted(times.self_us, key=lambda name: (-times.self_us[name], name))[:top]
    result: dict = {
        "total_ms": round(times.total_us / 1000, 1),
        "top_packages": [
            {
                "package": name,
                "self_ms": round(times.self_us[name] / 1000, 1),
                "cumulative_ms": round(times.cumulative_us[name] / 1000, 1),
                "via": times.via.get(name, ""),
            }
            for name in ranked
        ],
        "top_self_ms": round(sum(times.self_us[name] for name in ranked) / 1000, 1),
    }
    if baseline:
        base = _package_times(baseline)
        extra = {name: us - base.self_us.get(name, 0) for name, us in times.self_us.items()}
        over = sorted((name for name in extra if extra[name] > 0), key=lambda n: -extra[n])
        result["baseline_total_ms"] = round(base.total_us / 1000, 1)
        result["over_baseline"] = [
            {
                "package": name,
                "extra_self_ms": round(extra[name] / 1000, 1),
                "via": times.via.get(name, ""),
            }
            for name in over[:top]
        ]
    return result


def _importtime(subject: Subject) -> str:
    """The -X importtime output of one extra run (not timed: the tracing slows it)."""
    argv = [subject.argv[0], "-X", "importtime", *subject.argv[1:]]
    try:
        done = subprocess.run(
            argv,
            env=subject.env,
            cwd=subject.cwd,
            capture_output=True,
            text=True,
            timeout=SAMPLE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return ""
    return done.stderr


# --- the section ------------------------------------------------------------------------


def _stats(subject: Subject) -> dict:
    good = subject.good()
    if not good:
        return {"error": subject.error or "no sample"}
    return {
        "wall_ms_median": round(median([s.wall_ms for s in good]), 1),
        "import_ms_median": round(median([s.import_ms or 0.0 for s in good]), 1),
        "peak_mb_median": round(median([s.peak_mb for s in good]), 1),
        "wall_ms_samples": [round(s.wall_ms, 1) for s in good],
        "failed_samples": len(subject.samples) - len(good),
    }


def _note(handler: dict, base: dict, breakdown: dict, *, met: bool) -> str:
    """A handler's figure note: import time and peak memory against the baseline's, and
    what it spends beyond the floor (the packages whose -X importtime self time exceeds the
    baseline's); for a handler over the target, that list is what stands in the way."""
    note = (
        f"import alone {handler['import_ms_median']:.0f} ms vs {base['import_ms_median']:.0f} "
        f"ms, peak {handler['peak_mb_median']:.0f} MB vs {base['peak_mb_median']:.0f} MB"
    )
    heavy = breakdown.get("over_baseline", [])[:5]
    if heavy:
        note += "; beyond the baseline: " + ", ".join(
            f"{p['package']} +{p['extra_self_ms']:.0f} ms" for p in heavy
        )
        note += " (-X importtime self time; the handler's own module's is its module scope)"
    if not met:
        note += "; over the target by these"
    return note


def measure(quick: bool = False, template: Template | None = None) -> Section:
    """Cold start of every handler in template.yaml, as a ratio to boto3 + one client."""
    template = template or load_template()
    runs = QUICK_RUNS if quick else RUNS
    subjects = _subjects(template)
    baseline, handlers = subjects[0], subjects[1:]
    started = time.monotonic()

    # One untimed pass: writes the .pyc files and warms the page cache, so that every timed
    # sample pays the same (a fresh Lambda reads its code from a warm local disk too).
    for subject in subjects if not quick else subjects[:2]:
        warm = run_cold(subject.argv, subject.env, subject.cwd)
        if warm.error:
            subject.error = warm.error

    order = list(subjects)
    for round_number in range(runs):
        random.Random(round_number).shuffle(order)
        for subject in order:
            if subject.error and not subject.samples:
                continue  # it failed its warm-up: it cannot start, no point in retrying
            sample = run_cold(subject.argv, subject.env, subject.cwd)
            subject.samples.append(sample)
            if sample.error:
                subject.error = sample.error

    stats = {subject.name: _stats(subject) for subject in subjects}
    section = Section(
        key="cold_start",
        title="Cold start of every Lambda handler",
        details={
            "settings": {
                "runs_per_handler": runs,
                "warm_up": "one untimed run of each" if not quick else "baseline + one handler",
                "order": "all handlers and the baseline interleaved, shuffled per round",
                "process": f"{Path(sys.executable).name} -c <import the handler module>",
                "environment": "Lambda's variables, template environment, fake credentials, "
                f"AWS_ENDPOINT_URL={DEAD_ENDPOINT}",
                "wall": "whole process, spawn to exit; import = handler import alone",
                "peak": "ru_maxrss of the process (os.wait4)",
            },
            "baseline": stats[BASELINE],
            "handlers": {subject.name: stats[subject.name] for subject in handlers},
        },
    )
    base = stats[BASELINE].get("wall_ms_median")
    if base is None:
        section.summary = f"not measured: the baseline failed ({baseline.error})."
        section.details["seconds"] = round(time.monotonic() - started, 1)
        return section

    measured = [s for s in handlers if "wall_ms_median" in stats[s.name]]
    failed = [s.name for s in handlers if "wall_ms_median" not in stats[s.name]]
    if not measured:
        section.summary = (
            "not measured: no handler started ("
            + "; ".join(f"{s.name}: {s.error}" for s in handlers)
            + ")."
        )
        section.details["seconds"] = round(time.monotonic() - started, 1)
        return section

    # What each handler spends beyond the floor: one untimed -X importtime run of each (and
    # of the baseline), package by package, kept with its figures.
    baseline_imports = _importtime(baseline)
    base_stats = stats[BASELINE]
    for subject in measured:
        breakdown = import_breakdown(_importtime(subject), baseline=baseline_imports)
        handler_stats = stats[subject.name]
        handler_stats["imports"] = breakdown
        value = handler_stats["wall_ms_median"]
        ratio = value / base
        section.figures.append(
            Figure(
                name=f"cold start: {subject.name}",
                value=value,
                unit="ms",
                baseline=base,
                baseline_name=BASELINE_NAME,
                target=f"ratio <= {TARGET_RATIO}",
                met=ratio <= TARGET_RATIO,
                note=_note(handler_stats, base_stats, breakdown, met=ratio <= TARGET_RATIO),
            )
        )

    worst = max(measured, key=lambda s: stats[s.name]["wall_ms_median"])
    worst_value = stats[worst.name]["wall_ms_median"]
    breakdown = stats[worst.name]["imports"]
    section.details["worst_handler_imports"] = {"handler": worst.name, **breakdown}
    worst_stats = stats[worst.name]
    section.figures.append(
        Figure(
            name=f"cold start: worst handler ({worst.name})",
            value=worst_value,
            unit="ms",
            baseline=base,
            baseline_name=BASELINE_NAME,
            target=f"ratio <= {TARGET_RATIO}",
            met=worst_value / base <= TARGET_RATIO,
            note=_note(worst_stats, base_stats, breakdown, met=worst_value / base <= TARGET_RATIO),
        )
    )
    within = sum(1 for f in section.figures[:-1] if f.met)
    peaks = [stats[s.name]["peak_mb_median"] for s in measured]
    section.details["template_functions"] = len(template.functions)
    section.details["handlers_measured"] = len(measured)
    section.summary = (
        f"{len(measured)} of the template's {len(template.functions)} functions, {runs} cold "
        "processes each: median "
        f"{median([stats[s.name]['wall_ms_median'] for s in measured]):.0f} ms against "
        f"{base:.0f} ms for boto3 + one client; {within} of {len(measured)} within "
        f"{TARGET_RATIO}x; worst {worst.name} at {worst_value / base:.2f}x. Peak memory "
        f"{min(peaks):.0f}–{max(peaks):.0f} MB against {base_stats['peak_mb_median']:.0f} MB."
        + (f" Failed to start: {', '.join(failed)}." if failed else "")
    )
    section.details["seconds"] = round(time.monotonic() - started, 1)
    return section
