"""The figures of a run, the issue's targets, and the table (or JSON) they are printed as.

Definitions, so numbers from different runs mean the same thing:

- images/s (steady): detections stored per second between the 10th and the 90th percentile
  detection, which leaves out the start (empty pipeline) and the tail.
- images/s while uploading: detections stored between GO + debounce + 1 s and the feeder's last
  close, per second of that span. A pipeline that keeps up shows the offered rate here; one that
  falls behind shows what it did while the uploads kept coming, which the steady figure (mostly
  the backlog draining afterwards) hides. The rate target needs both.
- events/s: ai_security_event bus events per second over the measured run (GO to the last
  detection); with a batch window W each camera yields at most one event every W seconds.
- latency: time of the ai_security_detection bus event (fired after the commit) minus the feeder's
  close time of the file, minus the debounce when polling (with inotify an upload is taken in
  when it is closed, without a debounce); both clocks are CLOCK_MONOTONIC.
- loop lag: how late a 10 ms sleep on Home Assistant's event loop wakes up.
- RSS: sampled twice a second; the first and last quarter are the samples of the first and the
  last 25 % of the measured run's time; the slope is a least-squares fit of RSS against images
  detected, over the second half of the detections, in MiB per 1,000 images. A run that falls
  behind holds its backlog (pending uploads, tasks, timers) in memory, so judge leaks on a run
  whose rate the pipeline sustains.
- CPU per image: CPU seconds (user and system, all threads) over the measured run divided by the
  images detected in it; the stubs' and the feeder's from their own counters, over the same run.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
import json
import statistics
from typing import Any

from .probes import Profile, Sample

TARGET_RATE = 200.0
TARGET_LAG_P99 = 0.020
TARGET_LAG_MAX = 0.100
TARGET_LATENCY_P50 = 0.050
TARGET_RSS_GROWTH = 0.05
"""Memory is flat when the last quarter's median RSS is within 5 % of the first quarter's..."""
TARGET_RSS_SLOPE = 0.5
"""...and the second half of the run grows by at most 0.5 MiB per 1,000 images."""
MEMORY_RUN = 20_000
"""The issue's memory target is about a run of this many images."""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile (fraction in [0, 1]) of values, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Run:
    """Everything measured in one run, raw; figures() derives what is printed."""

    command: str
    config: dict[str, Any]
    environment: dict[str, Any]
    total: int
    detect_at: Sequence[float]
    latencies: Sequence[float]
    event_at: Sequence[float]
    lags: Sequence[float]
    lag_at: Sequence[float]
    gc_pauses: list[tuple[int, float, float]]
    """(generation, seconds, when) of each garbage collection during the run."""
    gc_heap: tuple[int, float]
    """Objects tracked at GO, and the seconds a full collection of them took just before GO."""
    last_close: float
    """The feeder's last close time (monotonic)."""
    samples: list[Sample]
    go_at: float
    end_at: float
    cpu_seconds: float
    machine_seconds: float
    """CPU seconds every process on the machine used over the measured run."""
    peak_rss: int
    thread_cpu: dict[str, float]
    stubs: dict[str, dict[str, Any]]
    feeder: dict[str, Any]
    events_total: int = 0
    event_detections: int = 0
    queue: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    profile: Profile | None = None
    extra: list[str] = field(default_factory=list)
    """Further report lines (the SQL counts)."""


def _steady_rate(times: Sequence[float]) -> float | None:
    ordered = sorted(times)
    if len(ordered) < 20:
        if len(ordered) < 2 or ordered[-1] <= ordered[0]:
            return None
        return (len(ordered) - 1) / (ordered[-1] - ordered[0])
    first, last = int(len(ordered) * 0.1), int(len(ordered) * 0.9) - 1
    span = ordered[last] - ordered[first]
    return (last - first) / span if span > 0 else None


def _slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def _while_uploading(run: Run, debounce: float) -> float | None:
    start = run.go_at + debounce + 1.0
    span = run.last_close - start
    if span < 5.0:  # a burst (--rate max): too short to say anything
        return None
    return sum(1 for t in run.detect_at if start <= t <= run.last_close) / span


def _worst_lags(run: Run, count: int = 3) -> list[tuple[float, float]]:
    """Return (lag, seconds after GO) of the worst lags."""
    pairs = sorted(zip(run.lags, run.lag_at, strict=True), reverse=True)[:count]
    return [(lag, at - run.go_at) for lag, at in pairs]


def _gc(run: Run) -> dict[str, Any]:
    """Return the collections per generation and the longest pauses with when they happened."""
    counts: dict[int, int] = {}
    for generation, _seconds, _at in run.gc_pauses:
        counts[generation] = counts.get(generation, 0) + 1
    worst = sorted(run.gc_pauses, key=lambda pause: -pause[1])[:3]
    return {
        "collections": counts,
        "worst": [(gen, seconds, at - run.go_at) for gen, seconds, at in worst],
        "heap_objects": run.gc_heap[0],
        "full_pass_at_go": run.gc_heap[1],
    }


def memory(run: Run) -> dict[str, Any]:
    """Return RSS over the run: second and last quarter medians, growth, second-half slope.

    The first quarter is warm-up and only shown: the pipeline's bounded caches (8 MiB of
    upload bytes waiting for detection, SQLAlchemy's statement cache, SQLite's page cache) and
    the allocator's arenas fill then. Growth is what comes after, once they are full.
    """
    detected = len(run.detect_at)
    window = [s for s in run.samples if run.go_at <= s.at <= run.end_at]
    if detected < 4 or len(window) < 4:
        return {}
    quarter = (run.end_at - run.go_at) / 4
    warmup = [s.rss for s in window if s.at <= run.go_at + quarter]
    first = [s.rss for s in window if run.go_at + quarter < s.at <= run.go_at + 2 * quarter]
    last = [s.rss for s in window if s.at >= run.end_at - quarter]
    second_half = [(s.detected / 1000, s.rss / 2**20) for s in window if s.detected >= detected / 2]
    result: dict[str, Any] = {
        "start_mib": window[0].rss / 2**20,
        "end_mib": window[-1].rss / 2**20,
        "peak_mib": run.peak_rss / 2**20,
        "slope_mib_per_1000": _slope(second_half),
    }
    if warmup:
        result["warmup_quarter_mib"] = statistics.median(warmup) / 2**20
    if first and last:
        result["first_quarter_mib"] = statistics.median(first) / 2**20
        result["last_quarter_mib"] = statistics.median(last) / 2**20
        result["growth_mib"] = result["last_quarter_mib"] - result["first_quarter_mib"]
        result["growth_fraction"] = result["growth_mib"] / result["first_quarter_mib"]
    return result


def figures(run: Run) -> dict[str, Any]:
    """Return the printed figures of run."""
    detected = len(run.detect_at)
    seconds = max(1e-9, run.end_at - run.go_at)
    events_in_run = sum(1 for t in run.event_at if run.go_at <= t <= run.end_at)
    stub_cpu = {
        kind: stats.get("cpu_seconds", 0.0) / detected if detected else None
        for kind, stats in run.stubs.items()
    }
    return {
        "images": run.total,
        "detected": detected,
        "missing": run.total - detected,
        "seconds": seconds,
        "offered_rate": run.feeder.get("rate"),
        "images_per_s": _steady_rate(run.detect_at),
        "images_per_s_uploading": _while_uploading(run, float(run.config.get("debounce", 0.0))),
        "upload_seconds": run.last_close - run.go_at,
        "images_per_s_overall": detected / seconds,
        "events_per_s": events_in_run / seconds,
        "events_total": run.events_total,
        "event_detections": run.event_detections,
        "latency_p50": percentile(run.latencies, 0.50),
        "latency_p99": percentile(run.latencies, 0.99),
        "latency_max": max(run.latencies) if run.latencies else None,
        "lag_samples": len(run.lags),
        "lag_p50": percentile(run.lags, 0.50),
        "lag_p99": percentile(run.lags, 0.99),
        "lag_max": max(run.lags) if run.lags else None,
        "lag_worst": _worst_lags(run),
        "gc": _gc(run),
        "memory": memory(run),
        "cpu_seconds": run.cpu_seconds,
        "cpu_per_image": run.cpu_seconds / detected if detected else None,
        "cpu_utilisation": run.cpu_seconds / seconds,
        "stub_cpu_per_image": stub_cpu,
        "feeder_cpu_per_image": (
            run.feeder.get("cpu_seconds", 0.0) / detected if detected else None
        ),
        "thread_cpu": run.thread_cpu,
        "machine_cores_busy": run.machine_seconds / seconds,
        "other_cores_busy": max(
            0.0,
            run.machine_seconds
            - run.cpu_seconds
            - sum(stats.get("cpu_seconds", 0.0) for stats in run.stubs.values())
            - run.feeder.get("cpu_seconds", 0.0),
        )
        / seconds,
    }


def targets(run: Run, fig: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Return (target, measured, passed) per issue target; passed None when it cannot be judged."""
    mem = fig["memory"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f} ms"

    rates = [r for r in (fig["images_per_s"], fig["images_per_s_uploading"]) if r is not None]
    rate = min(rates) if rates else None
    rows: list[tuple[str, str, bool | None]] = [
        (
            f">= {TARGET_RATE:.0f} images/s sustained (steady and while uploading)",
            "n/a" if rate is None else f"{rate:.1f} images/s",
            None if rate is None else rate >= TARGET_RATE,
        ),
        (
            f"loop lag p99 < {TARGET_LAG_P99 * 1000:.0f} ms",
            ms(fig["lag_p99"]),
            None if fig["lag_p99"] is None else fig["lag_p99"] < TARGET_LAG_P99,
        ),
        (
            f"loop lag max < {TARGET_LAG_MAX * 1000:.0f} ms",
            ms(fig["lag_max"]),
            None if fig["lag_max"] is None else fig["lag_max"] < TARGET_LAG_MAX,
        ),
        (
            f"latency p50 < {TARGET_LATENCY_P50 * 1000:.0f} ms from the file's close",
            ms(fig["latency_p50"]),
            None if fig["latency_p50"] is None else fig["latency_p50"] < TARGET_LATENCY_P50,
        ),
    ]
    growth, slope = mem.get("growth_fraction"), mem.get("slope_mib_per_1000")
    flat: bool | None = None
    if growth is not None and slope is not None:
        flat = growth <= TARGET_RSS_GROWTH and slope <= TARGET_RSS_SLOPE
    note = "" if run.total >= MEMORY_RUN else f" (a {run.total}-image run; the target is 20,000)"
    rows.append(
        (
            f"memory flat (q2->q4 <= {TARGET_RSS_GROWTH:.0%}, slope <= {TARGET_RSS_SLOPE} MiB/1k)",
            "n/a"
            if growth is None or slope is None
            else f"{growth:+.1%}, {slope:+.2f} MiB/1k images{note}",
            flat,
        )
    )
    return rows


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value * scale:.{digits}f}{unit}"


def render(run: Run) -> str:
    """Return the human-readable report of run."""
    fig = figures(run)
    mem = fig["memory"]
    lines: list[str] = []
    add = lines.append
    add("")
    add("ai_security benchmark")
    add("=" * 78)
    add(f"command      {run.command}")
    for key, value in run.environment.items():
        add(f"{key:<12} {value}")
    config = ", ".join(f"{k} {v}" for k, v in run.config.items())
    add(f"config       {config}")
    add("-" * 78)
    rows: list[tuple[str, str]] = [
        ("images written / detected", f"{fig['images']} / {fig['detected']}"),
        ("measured run (GO to last detection)", _fmt(fig["seconds"], " s")),
        ("offered rate (feeder)", _fmt(fig["offered_rate"], " images/s")),
        ("images/s through detection (steady)", _fmt(fig["images_per_s"], " images/s")),
        (
            "images/s while uploading",
            "{} (over {} of uploads)".format(
                _fmt(fig["images_per_s_uploading"], " images/s"),
                _fmt(fig["upload_seconds"], " s"),
            ),
        ),
        ("images/s overall", _fmt(fig["images_per_s_overall"], " images/s")),
        ("events/s", _fmt(fig["events_per_s"], " events/s", digits=2)),
        (
            "events in all / detections judged",
            f"{fig['events_total']} / {fig['event_detections']}",
        ),
        (
            "latency close -> stored",
            "p50 {}   p99 {}   max {}".format(
                _fmt(fig["latency_p50"], " ms", 1000),
                _fmt(fig["latency_p99"], " ms", 1000),
                _fmt(fig["latency_max"], " ms", 1000),
            ),
        ),
        (
            f"loop lag (10 ms probe, {fig['lag_samples']} samples)",
            "p50 {}   p99 {}   max {}".format(
                _fmt(fig["lag_p50"], " ms", 1000, 2),
                _fmt(fig["lag_p99"], " ms", 1000, 2),
                _fmt(fig["lag_max"], " ms", 1000, 2),
            ),
        ),
        (
            "worst lags (seconds after GO)",
            "   ".join(f"{lag * 1000:.0f} ms @{at:.0f} s" for lag, at in fig["lag_worst"]),
        ),
        (
            "garbage collections (longest pauses)",
            "{}   {}".format(
                ", ".join(f"gen {g}: {n}" for g, n in sorted(fig["gc"]["collections"].items())),
                "   ".join(
                    f"{seconds * 1000:.0f} ms (gen {gen}) @{at:.0f} s"
                    for gen, seconds, at in fig["gc"]["worst"]
                ),
            ),
        ),
        (
            "heap at GO (collected just before)",
            "{} tracked objects; that full collection took {}".format(
                fig["gc"]["heap_objects"], _fmt(fig["gc"]["full_pass_at_go"], " ms", 1000, 0)
            ),
        ),
        ("peak RSS (VmHWM)", _fmt(mem.get("peak_mib"), " MiB")),
        (
            "RSS median: quarters 1 (warm-up) / 2 / 4",
            "{} / {} / {}   growth {}".format(
                _fmt(mem.get("warmup_quarter_mib"), " MiB"),
                _fmt(mem.get("first_quarter_mib"), " MiB"),
                _fmt(mem.get("last_quarter_mib"), " MiB"),
                _fmt(mem.get("growth_mib"), " MiB"),
            ),
        ),
        ("RSS slope, second half", _fmt(mem.get("slope_mib_per_1000"), " MiB/1k images", digits=2)),
        (
            "CPU per image, Home Assistant",
            "{}   ({} CPU-s, {} of a core)".format(
                _fmt(fig["cpu_per_image"], " ms", 1000, 2),
                _fmt(fig["cpu_seconds"], "", digits=1),
                _fmt(fig["cpu_utilisation"], "%", 100, 0),
            ),
        ),
    ]
    rows.extend(
        (f"CPU per image, {kind} stub", _fmt(value, " ms", 1000, 2))
        for kind, value in fig["stub_cpu_per_image"].items()
    )
    rows.append(("CPU per image, feeder", _fmt(fig["feeder_cpu_per_image"], " ms", 1000, 2)))
    rows.append(
        (
            "machine busy (all processes)",
            "{} cores, of which {} not the benchmark's".format(
                _fmt(fig["machine_cores_busy"], digits=2),
                _fmt(fig["other_cores_busy"], digits=2),
            ),
        )
    )
    width = max(len(label) for label, _ in rows)
    lines.extend(f"{label:<{width}}  {value}" for label, value in rows)
    add("-" * 78)
    add("Home Assistant's CPU by thread (CPU-s over the run, ms per image):")
    detected = max(1, fig["detected"])
    for group, seconds in fig["thread_cpu"].items():
        if seconds >= 0.05:
            add(f"  {group:<40} {seconds:7.2f} s  {seconds / detected * 1000:6.2f} ms")
    if run.queue:
        busy = {k: v for k, v in run.queue.items() if v}
        add(f"job queue at the end: {busy}")
    stub_counts = {kind: stats.get("counts", {}) for kind, stats in run.stubs.items()}
    add(f"stub requests during the run: {stub_counts}")
    add("-" * 78)
    add("targets (2-core machine):")
    for name, measured, passed in targets(run, fig):
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[passed]
        add(f"  [{verdict}] {name:<58} {measured}")
    for note in run.notes:
        add(f"note: {note}")
    if run.extra:
        add("-" * 78)
        lines.extend(run.extra)
    if run.profile is not None:
        lines.extend(render_profile(run.profile))
    return "\n".join(lines)


def render_profile(profile: Profile, top: int = 12) -> list[str]:
    """Return the profiler's busy samples per thread group, by leaf and by inclusive function."""
    lines = ["-" * 78, f"profile: {profile.ticks} ticks; busy samples per thread group"]
    if profile.stall_ticks:
        lines.append(
            f"the loop was stalled (probe late by > 50 ms) in {profile.stall_ticks} ticks; "
            "its stack then (innermost first):"
        )
        lines.extend(f"  {n:4d}  {stack}" for stack, n in profile.stalls.most_common(top))
    for group, count in profile.samples.most_common():
        if count < max(5, profile.ticks // 200):
            continue
        lines.append(f"[{group}] {count} busy samples ({count / max(1, profile.ticks):.0%})")
        lines.append("  innermost Python function (self):")
        lines.extend(
            f"    {n / count:5.1%}  {where}" for where, n in profile.leaf[group].most_common(top)
        )
        if profile.ours[group]:
            lines.append("  the integration's functions on the stack (inclusive):")
            lines.extend(
                f"    {n / count:5.1%}  {where}"
                for where, n in profile.ours[group].most_common(top)
            )
        lines.append("  any function on the stack (inclusive):")
        lines.extend(
            f"    {n / count:5.1%}  {where}"
            for where, n in profile.inclusive[group].most_common(top * 2)
        )
    return lines


def as_json(run: Run) -> str:
    """Return the figures and targets of run as JSON."""
    fig = figures(run)
    payload = {
        "command": run.command,
        "config": run.config,
        "environment": run.environment,
        "figures": fig,
        "targets": [
            {"target": name, "measured": measured, "passed": passed}
            for name, measured, passed in targets(run, fig)
        ],
        "queue": run.queue,
        "stubs": run.stubs,
        "feeder": run.feeder,
        "notes": run.notes,
    }
    return json.dumps(payload, indent=2, default=str)
