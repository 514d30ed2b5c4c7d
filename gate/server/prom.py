"""Prometheus text exposition (format 0.0.4), hand-written: counters, histograms and gauges, no globals.

Every update runs on the server's event loop, so the metrics need no lock. A ``Registry`` is built per app
(``ServerState.metrics``); nothing here is shared between apps. Worker processes serving one port add each
other's values in at render time: ``Registry.snapshot()`` is one process's values as JSON-able data, and
``Registry.render(others)`` sums those snapshots into its own (see :mod:`gate.server.metrics_share`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds in seconds, from 1 ms to 60 s (slower observations land in the +Inf bucket)."""

LabelValues = tuple[str, ...]


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A HELP text as the text format writes it: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, infinities and NaN spelled as Prometheus reads them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{name}="{escape_label(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


@dataclass
class Counter:
    """A monotonically increasing count per combination of label values."""

    kind: ClassVar[str] = "counter"
    name: str
    help: str
    labelnames: tuple[str, ...] = ()
    values: dict[LabelValues, float] = field(default_factory=dict)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` (never negative) to the series of ``labels``."""
        if amount < 0:
            raise ValueError(f"a counter only goes up; got an increment of {amount}")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}; got {tuple(labels)}")
        return tuple(labels)

    def state(self) -> list[list[Any]]:
        """The values as JSON-able data: ``[[label values], value]`` per series."""
        return [[list(key), value] for key, value in self.values.items()]

    def samples(self, others: Sequence[Any] = ()) -> list[str]:
        """The series as text lines, other processes' ``state()`` added in (none yet: unlabelled shows 0)."""
        values = dict(self.values)
        for state in others:
            for labels, value in state:
                key = tuple(labels)
                values[key] = values.get(key, 0.0) + value
        if not values and not self.labelnames:
            return [f"{self.name} 0"]
        return [f"{self.name}{_labels(self.labelnames, key)} {format_value(v)}" for key, v in sorted(values.items())]


@dataclass
class Histogram:
    """Observations counted into fixed buckets, exposed cumulatively with ``_sum`` and ``_count``."""

    kind: ClassVar[str] = "histogram"
    name: str
    help: str
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(init=False)
    sum: float = field(default=0.0, init=False)
    count: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if list(self.buckets) != sorted(set(self.buckets)) or not self.buckets:
            raise ValueError(f"{self.name}: buckets must be increasing and distinct; got {self.buckets}")
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        """Count one observation (a bucket's bound is inclusive, as Prometheus' ``le`` says)."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def state(self) -> dict[str, Any]:
        """The per-bucket counts, sum and count as JSON-able data."""
        return {"counts": list(self.counts), "sum": self.sum, "count": self.count}

    def samples(self, others: Sequence[Any] = ()) -> list[str]:
        """Cumulative buckets up to ``le="+Inf"``, then the sum and the count; other processes' added in."""
        counts, total, count = list(self.counts), self.sum, self.count
        for state in others:
            if len(state["counts"]) == len(counts):  # same buckets (same code); anything else is not summable
                counts = [mine + theirs for mine, theirs in zip(counts, state["counts"], strict=True)]
                total, count = total + state["sum"], count + state["count"]
        lines, running = [], 0
        for bound, bucket in zip((*self.buckets, math.inf), counts, strict=True):
            running += bucket
            lines.append(f'{self.name}_bucket{{le="{format_value(bound)}"}} {running}')
        lines += [f"{self.name}_sum {format_value(total)}", f"{self.name}_count {count}"]
        return lines


@dataclass
class Gauge:
    """A value read when the metrics are rendered (for example the requests in flight right now)."""

    kind: ClassVar[str] = "gauge"
    name: str
    help: str
    read: Callable[[], float]

    def state(self) -> float:
        """The current value."""
        return float(self.read())

    def samples(self, others: Sequence[Any] = ()) -> list[str]:
        """The current value, plus other processes' (in flight across workers; their limits together)."""
        return [f"{self.name} {format_value(self.read() + sum(others))}"]


Metric = Counter | Histogram | Gauge
M = TypeVar("M", Counter, Histogram, Gauge)


@dataclass
class Registry:
    """The metrics of one app, rendered in the order they were added."""

    metrics: list[Metric] = field(default_factory=list)

    def add(self, metric: M) -> M:
        """Register ``metric`` (names are unique) and return it."""
        if any(existing.name == metric.name for existing in self.metrics):
            raise ValueError(f"metric {metric.name!r} is already registered")
        self.metrics.append(metric)
        return metric

    def snapshot(self) -> dict[str, Any]:
        """Every metric's values as JSON-able data, by name (what another process adds in at render time)."""
        return {metric.name: metric.state() for metric in self.metrics}

    def render(self, others: Sequence[Mapping[str, Any]] = ()) -> str:
        """The whole exposition: ``# HELP`` and ``# TYPE`` before each metric's samples, ``others``' values
        (snapshots of the same registry in other processes) summed into this one's."""
        lines: list[str] = []
        for metric in self.metrics:
            lines += [f"# HELP {metric.name} {escape_help(metric.help)}", f"# TYPE {metric.name} {metric.kind}"]
            lines += metric.samples([other[metric.name] for other in others if metric.name in other])
        return "\n".join(lines) + "\n"
