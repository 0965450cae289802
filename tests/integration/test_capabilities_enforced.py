"""A function's capabilities bind its tasks' runs, through the executor against moto with real
child processes: timeout (504), memSize (a clear memory error), cpuCount (the run's cpu
cgroup, where this machine gives one), privileged (refused unrun unless allowed). A task keeps
the capabilities its function had when it was created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskfn import wiring
from taskfn.models import Capabilities, FunctionRecord
from taskfn.runtime import cgroups, confinement
from taskfn.runtime.cgroups import CpuCgroup, cpu_max, cpu_quota
from taskfn.runtime.codecache import CodeCache
from taskfn.runtime.pool import SandboxPool
from taskfn.runtime.python import DEFAULT_MEMORY_MB, run_python
from taskfn.services.executor import PRIVILEGED_REFUSED, Executor
from taskfn.services.functions import FunctionService, NewFunction
from taskfn.services.tasks import TaskService
from taskfn.settings import Settings, get_settings
from taskfn.stores.lambdas import Configuration

from .helpers import ALICE, TEMPLATE

PROBE = '''
import resource, time

def _cpu_bound():
    """(quota, period) of the cpu cgroup this process is in, as the kernel has them."""
    lines = [line.split(":", 2) for line in open("/proc/self/cgroup").read().splitlines()]
    for _, controllers, path in lines:
        if "cpu" in controllers.split(","):
            base = "/sys/fs/cgroup/cpu" + path
            return [int(open(base + "/cpu.cfs_quota_us").read()),
                    int(open(base + "/cpu.cfs_period_us").read())]
    for hierarchy, _, path in lines:
        for mount in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            try:
                quota, period = open(mount + path + "/cpu.max").read().split()
            except OSError:
                continue
            return [-1 if quota == "max" else int(quota), int(period)]
    return None

def handler(event, context):
    mode = event["query"].get("mode")
    if mode == "sleep":
        time.sleep(30)
        return "woke up"
    if mode == "hog":
        hoard = bytearray(512 * 1024 * 1024)
        return len(hoard)
    return {"memory": context.memory_limit_in_mb,
            "address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
            "cpu": _cpu_bound()}
'''


class NoCode:
    def __call__(self, *args, **kwargs):
        raise AssertionError("the task's code ran")


def executor(tmp_path: Path, runner=run_python, **settings) -> Executor:
    return Executor(wiring.tasks(), wiring.functions(), wiring.blobs(),
                    CodeCache(tmp_path / "code"), "cell-caps",
                    get_settings().model_copy(update=settings), runner)


def probe_function(**capabilities) -> str:
    """The probe, with these capabilities set as the capabilities route sets them."""
    functions = FunctionService.from_env()
    function_id = functions.create(ALICE, NewFunction(name="probe", source=PROBE)).id
    if capabilities:
        set_capabilities(function_id, capabilities)
    return function_id


def set_capabilities(function_id: str, changes: dict, *, allow_privileged: bool = False):
    functions = FunctionService.from_env()
    functions.settings = get_settings().model_copy(update={"allow_privileged": allow_privileged})
    functions.set_capabilities(ALICE, function_id, changes)


def new_task(function_id: str, mode: str = "") -> str:
    return TaskService.from_env().create(ALICE, function_id, body=None,
                                         query={"mode": mode} if mode else {},
                                         size=0).task_guid


def outcome(task_id: str) -> tuple[int, dict | str, str]:
    """(status, body as JSON when it is, failure reason) of a finished task."""
    result = TaskService.from_env().result(ALICE, task_id)
    try:
        body = json.loads(result.body)
    except ValueError:
        body = result.body.decode()
    return result.status, body, wiring.tasks().get(task_id).failure_reason


# --- a task keeps its function's capabilities of the moment it was created ----------------


def test_a_task_keeps_the_capabilities_its_function_had_when_it_was_created(backend, tmp_path):
    function_id = probe_function()
    before = new_task(function_id)
    set_capabilities(function_id, {"memSize": 256, "timeout": 30, "cpuCount": 2})
    after = new_task(function_id)
    set_capabilities(function_id, {"memSize": 1024})  # not the tasks' business any more
    first, second = wiring.tasks().get(before), wiring.tasks().get(after)
    assert (first.capabilities, first.timeout) == (Capabilities(), 10)
    assert (second.capabilities, second.timeout) == (
        Capabilities(memSize=256, timeout=30, cpuCount=2), 30)
    run = executor(tmp_path)
    assert run.run(before) == "succeeded" and run.run(after) == "succeeded"
    assert outcome(before)[1]["memory"] == DEFAULT_MEMORY_MB
    assert outcome(before)[1]["address_space"] == DEFAULT_MEMORY_MB * 1024 * 1024
    assert outcome(after)[1]["memory"] == 256
    assert outcome(after)[1]["address_space"] == 256 * 1024 * 1024


# --- timeout ------------------------------------------------------------------------------


def test_a_run_past_its_timeout_ends_504_and_fails_the_task(backend, tmp_path):
    """timeout 10, code that sleeps 30."""
    function_id = probe_function(timeout=10)
    task_id = new_task(function_id, "sleep")
    assert executor(tmp_path).run(task_id) == "failed"
    status, body, reason = outcome(task_id)
    assert (status, body, reason) == (
        504, {"errorType": "TimeoutError", "errorMessage": "timed out after 10 s"},
        "timed out after 10 s")
    assert wiring.tasks().get(task_id).state == "Completed"


# --- memSize ------------------------------------------------------------------------------


def test_a_run_past_its_memory_fails_with_a_memory_error_naming_the_limit(backend, tmp_path):
    """memSize 128, code that allocates 512 MB."""
    function_id = probe_function(memSize=128)
    task_id = new_task(function_id, "hog")
    assert executor(tmp_path).run(task_id) == "failed"
    status, body, reason = outcome(task_id)
    assert status == 500 and body["errorType"] == "MemoryError"
    assert reason == "MemoryError: out of memory (memory limit 128 MB)"


@pytest.mark.parametrize(("mem_size", "memory_mb"), [
    (0, DEFAULT_MEMORY_MB), (1, 128), (127, 128), (128, 128), (300, 300), (2048, 2048)])
def test_a_function_s_own_lambda_gets_its_memory_from_mem_size(mem_size, memory_mb):
    """Isolation "lambda": Lambda's MemorySize is at least 128 MB."""
    function = FunctionRecord(id="f", owner="alice", name="f", created_at=1,
                              capabilities=Capabilities(memSize=mem_size, timeout=45))
    assert Configuration.of(function, 10) == Configuration(memory_mb=memory_mb, timeout_s=55)


# --- cpuCount -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cpu_count", "line"), [
    (0, "100000 100000"), (1, "100000 100000"), (2, "200000 100000"), (4, "400000 100000")])
def test_the_cpu_bound_is_cpu_count_periods_and_one_cpu_by_default(cpu_count, line):
    assert cgroups.DEFAULT_CPUS == 1
    assert cpu_max(cpu_count) == line
    assert cpu_quota(cpu_count) == tuple(int(n) for n in line.split())


@pytest.mark.parametrize("version", [1, 2])
def test_a_cpu_cgroup_is_written_as_its_version_wants(tmp_path, version):
    """v2: cpu.max "<quota> <period>"; v1: cpu.cfs_quota_us and cpu.cfs_period_us."""
    group = CpuCgroup(tmp_path, version)
    group.limit(3)
    if version == 2:
        assert (tmp_path / "cpu.max").read_text() == "300000 100000"
    else:
        assert (tmp_path / "cpu.cfs_quota_us").read_text() == "300000"
        assert (tmp_path / "cpu.cfs_period_us").read_text() == "100000"
    assert group.bound() == (300000, 100000)


def _no_cpu_cgroup() -> str:
    if not confinement.separate_users():
        return "not root: sandboxes share this process's user and get no cgroup"
    if CpuCgroup.create("taskfn-probe") is None:
        return "no cpu cgroup this process may make (no cpu controller it may write)"
    return ""


@pytest.mark.skipif(bool(_no_cpu_cgroup()), reason=_no_cpu_cgroup() or "-")
@pytest.mark.parametrize("runner", ["run_python", "pool"])
@pytest.mark.parametrize("cpu_count", [0, 2, 3])
def test_a_run_s_processes_are_bound_to_its_cpu_count(backend, tmp_path, runner, cpu_count):
    """The run's own processes find themselves in a cpu cgroup whose bound is cpuCount CPUs
    (pooled sandboxes are started before their job and bound when it comes)."""
    function_id = probe_function(cpuCount=cpu_count)
    task_id = new_task(function_id)
    if runner == "pool":
        with SandboxPool(1) as pool:
            assert pool.wait_ready(30)
            assert executor(tmp_path, pool.run).run(task_id) == "succeeded"
            assert pool.stats["warm_hits"] == 1
    else:
        assert executor(tmp_path).run(task_id) == "succeeded"
    assert outcome(task_id)[1]["cpu"] == list(cpu_quota(cpu_count))


# --- privileged ---------------------------------------------------------------------------


def test_a_privileged_task_fails_unrun_where_privileged_work_is_not_allowed(backend, tmp_path):
    """Set while the platform allowed it; this executor does not."""
    function_id = probe_function()
    set_capabilities(function_id, {"privileged": True}, allow_privileged=True)
    task_id = new_task(function_id)
    assert executor(tmp_path, NoCode(), allow_privileged=False).run(task_id) == "failed"
    status, body, reason = outcome(task_id)
    assert (status, body, reason) == (
        403, {"errorType": "PrivilegedNotAllowed", "errorMessage": PRIVILEGED_REFUSED},
        PRIVILEGED_REFUSED)
    assert reason == "privileged work is not allowed on this platform (ALLOW_PRIVILEGED)"


def test_a_privileged_task_runs_where_privileged_work_is_allowed(backend, tmp_path):
    function_id = probe_function()
    set_capabilities(function_id, {"privileged": True}, allow_privileged=True)
    task_id = new_task(function_id)
    assert executor(tmp_path, allow_privileged=True).run(task_id) == "succeeded"
    assert outcome(task_id)[0] == 200


def test_privileged_work_is_a_template_parameter_off_by_default():
    assert TEMPLATE.parameters["AllowPrivileged"] == "false"
    variables = TEMPLATE.globals["Function"]["Environment"]["Variables"]
    assert variables["ALLOW_PRIVILEGED"] == {"Ref": "AllowPrivileged"}
    assert Settings().allow_privileged is False
