"""Entry point: python -m scripts.bench_zones_lib [options]; scripts/bench_zones runs it in the lab.

Times core.zones.ZoneMap.zone_for on one thread, as the pipeline calls it once per detection.
Two cases, both deterministic from --seed:

- spread: Z zones (default 10) of 6 to 12 points, star-shaped around centres spread over the
  frame (neighbours overlap, priorities 0 to 3), and N detections with random boxes of 1080p
  sizes anywhere in the frame (some sticking out). Most lookups are settled by the bounding-box
  prefilter; this is what a camera sees.
- worst: Z zones of 12 points around the frame's centre, each turned a little, and detections
  whose bottom centre lies inside every zone's bounding box but in no zone: every lookup runs
  the point-in-polygon test of every zone to the end (Z x 12 sides).

Detections are timed in batches (--batch, default 1,000); the report gives per-detection
microseconds: p50, p99 and best of the batches, and the mean over all, against the target.
The loop's own cost (an empty call per detection) is shown too; it is included in the figures.
"""

import argparse
from collections.abc import Callable, Sequence
import math
import os
import platform
import random
import statistics
import sys
import time

from custom_components.ai_security.core.models import BoundingBox, Detection
from custom_components.ai_security.core.zones import (
    Zone,
    ZoneKind,
    ZoneMap,
    format_points,
    make_zone,
)

TARGET_US = 20.0
"""zone_for() of one detection with 10 zones, on one core."""
WIDTH, HEIGHT = 1920, 1080
WARMUP = 2_000
"""Lookups before timing, so the interpreter's specialised bytecode is in place, as it is later."""
KINDS = tuple(ZoneKind)


def star(
    rng: random.Random, centre: tuple[float, float], radius: float, corners: int, turn: float = 0.0
) -> str:
    """Return the points text of a star-shaped polygon: simple by construction, often concave."""
    step = 2 * math.pi / corners
    points = []
    for index in range(corners):
        angle = turn + step * (index + rng.uniform(0.1, 0.9))  # one corner per sector: in order
        reach = radius * rng.uniform(0.45, 1.0)
        points.append(
            (
                round(centre[0] + reach * math.cos(angle), 6),
                round(centre[1] + reach * math.sin(angle), 6),
            )
        )
    return format_points(points)


def spread_zones(rng: random.Random, count: int) -> list[Zone]:
    """Return count zones around centres on a grid over the frame, neighbours overlapping."""
    columns = max(1, math.ceil(math.sqrt(count * 2)))
    rows = max(1, math.ceil(count / columns))
    zones = []
    for index in range(count):
        cx = (index % columns + 0.5) / columns
        cy = (index // columns + 0.5) / rows
        room = min(cx, 1 - cx, cy, 1 - cy)
        radius = min(room, 0.75 / min(columns, rows))  # over half a cell: neighbours overlap
        zones.append(
            make_zone(
                f"Zone {index + 1}",
                KINDS[index % len(KINDS)],
                rng.randrange(4),
                star(rng, (cx, cy), radius, rng.randrange(6, 13)),
            )
        )
    return zones


def random_detections(rng: random.Random, count: int) -> list[Detection]:
    """Return count detections with boxes of people-to-car sizes anywhere in a 1080p frame."""
    found = []
    for _ in range(count):
        w, h = rng.uniform(20, 400), rng.uniform(40, 600)
        found.append(
            Detection(
                label="person",
                confidence=0.8,
                bbox=BoundingBox(
                    x=rng.uniform(-w / 4, WIDTH - w * 3 / 4),
                    y=rng.uniform(-h / 4, HEIGHT - h * 3 / 4),
                    w=w,
                    h=h,
                ),
                frame_width=WIDTH,
                frame_height=HEIGHT,
            )
        )
    return found


def worst_case(rng: random.Random, zone_count: int, count: int) -> tuple[ZoneMap, list[Detection]]:
    """Return zones and detections that each pass every bounding box yet fall in no zone."""
    zones = ZoneMap(
        make_zone(
            f"Ring {index + 1}",
            ZoneKind.YARD,
            index,
            star(rng, (0.5, 0.5), 0.45, 12, turn=index * 0.37),
        )
        for index in range(zone_count)
    )
    x_low = max(zone.bbox[0] for zone in zones)
    y_low = max(zone.bbox[1] for zone in zones)
    x_high = min(zone.bbox[2] for zone in zones)
    y_high = min(zone.bbox[3] for zone in zones)
    pool: list[tuple[float, float]] = []
    for _ in range(2_000_000):
        point = (rng.uniform(x_low, x_high), rng.uniform(y_low, y_high))
        if zones.zone_at(*point) is None:
            pool.append(point)
            if len(pool) == 5_000:
                break
    if not pool:
        raise SystemExit("no point lies in every bounding box and no zone; try another --seed")
    found = []
    for index in range(count):
        x, y = pool[index % len(pool)]
        h = 200.0
        found.append(
            Detection(
                label="person",
                confidence=0.8,
                bbox=BoundingBox(x=x * WIDTH - 50, y=y * HEIGHT - h, w=100, h=h),
                frame_width=WIDTH,
                frame_height=HEIGHT,
            )
        )
    return zones, found


def measure(
    lookup: Callable[[Detection], object], detections: Sequence[Detection], batch: int
) -> list[float]:
    """Return microseconds per detection of each batch, after WARMUP untimed lookups."""
    for detection in detections[:WARMUP]:
        lookup(detection)
    per_detection = []
    clock = time.perf_counter_ns
    for start in range(0, len(detections), batch):
        chunk = detections[start : start + batch]
        started = clock()
        for detection in chunk:
            lookup(detection)
        per_detection.append((clock() - started) / 1000 / len(chunk))
    return per_detection


def percentile(values: list[float], share: float) -> float:
    """Return the value at share (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def row(name: str, times: list[float], target: float | None) -> str:
    """Return one line of the table; the verdict goes by the p99 of the batches."""
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    verdict = "" if target is None else ("  PASS" if p99 < target else "  FAIL")
    goal = "" if target is None else f"< {target:g}"
    return (
        f"{name:<34} {p50:7.2f} {p99:7.2f} {min(times):7.2f} {statistics.fmean(times):7.2f}"
        f"  {goal:>6}{verdict}".rstrip()
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(prog="scripts/bench_zones", description=__doc__)
    parser.add_argument("--detections", type=int, default=100_000, help="default 100,000")
    parser.add_argument("--zones", type=int, default=10, help="zones per camera (default 10)")
    parser.add_argument("--batch", type=int, default=1_000, help="detections per timed batch")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    if options.detections < 1 or options.batch < 1 or not 1 <= options.zones <= 50:
        parser.error("--detections and --batch must be >= 1, --zones 1 to 50")
    if hasattr(os, "sched_setaffinity"):  # one core, as one executor thread gets at best
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = random.Random(options.seed)  # noqa: S311 - reproducible shapes, not a secret
    zones = ZoneMap(spread_zones(rng, options.zones))
    detections = random_detections(rng, options.detections)
    worst_zones, worst = worst_case(rng, options.zones, options.detections)

    spread = measure(zones.zone_for, detections, options.batch)
    hardest = measure(worst_zones.zone_for, worst, options.batch)
    empty = measure(lambda detection: None, detections, options.batch)

    placed = [zones.zone_for(detection) for detection in detections]
    in_zone = sum(zone is not None for zone in placed) / len(placed)
    corners = [len(zone.points) for zone in zones]
    out = sys.stdout
    out.write(
        f"spread: {len(zones)} zones of {min(corners)}-{max(corners)} points "
        f"({sum(corners)} sides) over a {WIDTH}x{HEIGHT} frame; {len(detections):,} detections, "
        f"{in_zone:.0%} of them in a zone\n"
        f"worst: {len(worst_zones)} zones of 12 points, every bottom centre inside every "
        f"zone's bounding box and in no zone\n"
        f"Python {platform.python_version()}, {platform.machine()}, one core pinned, batches of "
        f"{options.batch:,} after {WARMUP:,} warm-up lookups\n\n"
        f"{'us per detection':<34} {'p50':>7} {'p99':>7} {'best':>7} {'mean':>7}  {'target':>6}\n"
        f"{row('zone_for(), spread', spread, TARGET_US)}\n"
        f"{row('zone_for(), worst case', hardest, TARGET_US)}\n"
        f"{row('loop and call alone (no lookup)', empty, None)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
