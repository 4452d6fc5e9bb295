"""Prometheus metrics in the text exposition format, without a client library.

The server needs three kinds (counters, gauges read at scrape time, histograms) and a renderer;
that is less code than adapting prometheus_client's registry to a per-app lifetime, and it keeps
the requirements short. Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
import math
import threading
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from a GPU's few milliseconds to a CPU's seconds per image."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = labels
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A count that only goes up, per combination of label values."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        """Start with no series; a series appears at its first inc()."""
        super().__init__(name, help_text, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add amount to the series of these label values."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Return the series' count (0 when it never counted)."""
        return self._values.get(labels, 0.0)

    def samples(self) -> Iterable[str]:
        """Yield one sample line per series."""
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class Gauge(_Metric):
    """A value read when Prometheus scrapes (queue depth, model loaded)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """Keep the function that reads the current value."""
        super().__init__(name, help_text)
        self._read = read

    def samples(self) -> Iterable[str]:
        """Yield the current value."""
        yield f"{self.name} {_number(self._read())}"


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count, per label values."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        buckets: Iterable[float],
        labels: tuple[str, ...] = (),
    ) -> None:
        """Fix the upper bounds of the buckets (+Inf is added)."""
        super().__init__(name, help_text, labels)
        self.bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        """Count value in its bucket of the series of these label values."""
        with self._lock:
            counts, total = self._series.setdefault(labels, ([0] * (len(self.bounds) + 1), [0.0]))
            counts[bisect_left(self.bounds, value)] += 1
            total[0] += value

    def count(self, *labels: str) -> int:
        """Return how many values the series observed."""
        series = self._series.get(labels)
        return sum(series[0]) if series else 0

    def samples(self) -> Iterable[str]:
        """Yield the cumulative buckets, then _sum and _count, per series."""
        with self._lock:
            items = sorted((key, (list(c), t[0])) for key, (c, t) in self._series.items())
        for labels, (counts, total) in items:
            running = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                running += count
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {_number(total)}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {running}"


_M = TypeVar("_M", bound=_Metric)


class Registry:
    """The server's metrics, rendered in the order they were added."""

    def __init__(self) -> None:
        """Start empty."""
        self._metrics: list[_Metric] = []

    def add(self, metric: _M) -> _M:
        """Register metric and return it."""
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        """Return every metric in the text exposition format."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
