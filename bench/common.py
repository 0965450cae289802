"""What every benchmark returns, and the small measuring tools they share.

Each benchmark module has `measure(quick: bool = False) -> Section`. A figure is a ratio
against a baseline measured in the same run (these machines are shared and noisy); the
absolute values are kept beside it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str                 # what is measured, e.g. "cold start: CreateTaskFunction"
    value: float              # the measurement, in `unit`
    unit: str                 # "ms", "MB", "requests", "tasks/s", "$"
    baseline: float | None = None   # the floor measured in the same run, same unit
    baseline_name: str = ""   # what the baseline is
    target: str = ""          # e.g. "ratio <= 1.2", "= minimum", ">= 0.5 x floor"
    met: bool | None = None   # None when there is no target
    note: str = ""            # why, when a target is not met; anything a reader needs

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return data


@dataclass
class Section:
    key: str                  # "cold_start", "aws_requests", "executor", "end_to_end", "cost"
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)   # raw samples, settings
    summary: str = ""         # one or two sentences for the report

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "summary": self.summary,
            "figures": [f.as_dict() for f in self.figures],
            "details": self.details,
        }


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call takes (perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest-rank, of a non-empty list."""
    ordered = sorted(values)
    # ceil, not round(x + 0.5): round() halves to even, one rank too high for odd p*n/100;
    # the epsilon absorbs float noise (7 / 100 * 100 is 7.000000000000001)
    rank = max(0, min(len(ordered) - 1, math.ceil(p * len(ordered) / 100 - 1e-9) - 1))
    return ordered[rank]
