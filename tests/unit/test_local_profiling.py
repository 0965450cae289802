"""local/profiling.py: nested sections are each charged their own time, and a phase's
figures are the difference of two reads, per task."""

from __future__ import annotations

from taskfn.local import profiling


def test_nested_sections_are_charged_their_own_time(monkeypatch):
    now = [100.0]  # a clock the test moves by hand: no real time is measured
    monkeypatch.setattr(profiling.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(profiling.time, "thread_time", lambda: now[0])
    profiling.reset()
    profiling.enable()
    try:
        with profiling.section("gateway"):
            now[0] += 2.0
            with profiling.section("handler: F"):
                now[0] += 3.0
        figures = profiling.sections()
    finally:
        profiling.disable()
        profiling.reset()
    outer, inner = figures["gateway"], figures["gateway > handler: F"]
    assert outer["count"] == inner["count"] == 1
    assert outer["wall_s"] == 2.0 and inner["wall_s"] == 3.0  # the inner's time is its own


def test_a_phase_is_a_difference_per_task():
    before = {"monotonic": 10.0, "process": {"self_cpu_s": 1.0, "children_cpu_s": 0.0},
              "sections": {"gateway > handler: F > aws: dynamodb.GetItem":
                           {"count": 1, "wall_s": 0.1, "cpu_s": 0.01}},
              "moto": {"actions": {"DynamoDB.GetItem": {"count": 1, "wall_s": 0.01,
                                                        "cpu_s": 0.01}},
                       "process": {"self_cpu_s": 2.0}}}
    after = {"monotonic": 20.0, "process": {"self_cpu_s": 3.0, "children_cpu_s": 1.0},
             "sections": {"gateway > handler: F > aws: dynamodb.GetItem":
                          {"count": 5, "wall_s": 0.5, "cpu_s": 0.05},
                          "gateway": {"count": 4, "wall_s": 0.04, "cpu_s": 0.02}},
             "moto": {"actions": {"DynamoDB.GetItem": {"count": 5, "wall_s": 0.05,
                                                       "cpu_s": 0.05}},
                      "process": {"self_cpu_s": 6.0}}}
    figures = profiling.breakdown(profiling.difference(before, after), tasks=4)
    assert figures["seconds"] == 10.0
    assert figures["cpu_ms_per_task"] == {"stack process": 500.0, "moto process": 1000.0,
                                          "sandboxes (user code's processes)": 250.0}
    assert figures["aws_calls_per_task"]["dynamodb.GetItem"] == {"calls": 1.0, "wall": 100.0,
                                                                 "cpu": 10.0}
    assert figures["moto_requests_per_task"] == 1.0
    assert figures["stack_own_ms_per_task"]["HTTP gateway"] == {"wall": 10.0, "cpu": 5.0}
    assert "moto 1000.0 ms" in profiling.summary(figures)
