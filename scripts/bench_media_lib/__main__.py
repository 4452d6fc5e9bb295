"""Entry point: python -m scripts.bench_media_lib [options]; scripts/bench_media runs it in the lab.

Times core.annotate on one thread, as the pipeline's executor runs it for one event: annotate()
(decode, EXIF orientation, boxes and tags, full-size JPEG, thumbnail) and thumbnail() of the
upload alone. The frame is made here, deterministic from --seed: a camera-like picture (sky and
ground gradients, buildings, cars, people-sized shapes) with sensor noise, so the JPEG has the
size and entropy of a real 1080p upload (about 300 KB at quality 85), which is what decoding and
encoding time depend on. Reports p50, p99, mean and min in ms against the target.
"""

import argparse
from collections.abc import Callable
import io
import os
import platform
import random
import statistics
import sys
import time

import PIL
from PIL import Image, ImageDraw, ImageFilter, features

from custom_components.ai_security.core.annotate import annotate, thumbnail
from custom_components.ai_security.core.models import BoundingBox, Detection

TARGET_MS = 60.0
"""annotate() of a 1920x1080 frame with ~5 boxes, its thumbnail included, on one core."""
WARMUP = 3
"""Runs before timing: the font is loaded and caches are warm, as in a running pipeline."""
LABELS = ("person", "car", "dog", "bicycle", "bird", "truck", "cat", "umbrella")


def camera_frame(width: int, height: int, seed: int, noise: float = 24.0) -> bytes:
    """Return a JPEG (quality 85) that compresses like a real camera frame of that size."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible picture, not a secret
    sky = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    frame = Image.merge(
        "RGB",
        [
            channel.point(lambda v, k=k: int(v * k))
            for channel, k in zip(sky.split(), (0.5, 0.7, 1), strict=True)
        ],
    )
    draw = ImageDraw.Draw(frame)
    horizon = height * 2 // 5
    draw.rectangle((0, horizon, width, height), fill=(92, 96, 84))  # ground
    for _ in range(14):  # buildings and fences along the horizon
        left = rng.randrange(0, width)
        top = horizon - rng.randrange(height // 10, height // 3)
        shade = rng.randrange(60, 200)
        draw.rectangle(
            (left, top, left + rng.randrange(width // 20, width // 5), horizon),
            fill=(shade, shade - 20, shade - 35),
        )
        for window in range(rng.randrange(2, 8)):
            wx = left + 10 + window * 28
            draw.rectangle((wx, top + 15, wx + 14, top + 35), fill=(230, 220, 150))
    for _ in range(40):  # cars, people, bins, plants
        x, y = rng.randrange(0, width), rng.randrange(horizon, height)
        size = rng.randrange(height // 40, height // 6)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.rounded_rectangle((x, y, x + size * 2, y + size), radius=size // 4, fill=color)
        else:
            draw.ellipse((x, y, x + size // 2, y + size), fill=color)
    frame = frame.filter(ImageFilter.GaussianBlur(1.2))  # lens softness
    grain = Image.effect_noise((width, height), noise).convert("RGB")
    frame = Image.blend(frame, grain, 0.18)
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def detections(width: int, height: int, count: int, seed: int) -> list[Detection]:
    """Return count detections with plausible boxes spread over the frame."""
    rng = random.Random(seed + 1)  # noqa: S311 - reproducible boxes, not a secret
    found = []
    for index in range(count):
        w, h = rng.randrange(width // 20, width // 5), rng.randrange(height // 8, height // 2)
        found.append(
            Detection(
                label=LABELS[index % len(LABELS)],
                confidence=rng.uniform(0.4, 0.99),
                bbox=BoundingBox(
                    x=rng.randrange(0, width - w), y=rng.randrange(0, height - h), w=w, h=h
                ),
            )
        )
    return found


def measure(function: Callable[[], object], runs: int) -> list[float]:
    """Return the wall time of each of runs calls in ms, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(values: list[float], share: float) -> float:
    """Return the value at share (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def row(name: str, times: list[float], target: float | None) -> str:
    """Return one line of the table."""
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    verdict = "" if target is None else ("  PASS" if p99 < target else "  FAIL")
    goal = "" if target is None else f"< {target:g}"
    return (
        f"{name:<28} {p50:7.1f} {p99:7.1f} {statistics.fmean(times):7.1f} {min(times):7.1f}"
        f"  {goal:>6}{verdict}".rstrip()
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report."""
    parser = argparse.ArgumentParser(prog="scripts/bench_media", description=__doc__)
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each (default 50)")
    parser.add_argument("--boxes", type=int, default=5, help="detections drawn (default 5)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--quality", type=int, default=90, help="annotate()'s JPEG quality")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    if options.runs < 1 or options.width < 64 or options.height < 64:
        parser.error("--runs must be >= 1 and the frame at least 64x64")
    if hasattr(os, "sched_setaffinity"):  # one core, as one executor thread gets at best
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    data = camera_frame(options.width, options.height, options.seed)
    found = detections(options.width, options.height, options.boxes, options.seed)
    annotated = measure(lambda: annotate(data, found, quality=options.quality), options.runs)
    thumbs = measure(lambda: thumbnail(data), options.runs)
    result = annotate(data, found, quality=options.quality)

    turbo = features.check_feature("libjpeg_turbo")
    out = sys.stdout
    out.write(
        f"frame: {options.width}x{options.height} JPEG, {len(data) / 1024:.0f} KiB, "
        f"{options.boxes} boxes; annotated {len(result.jpeg) / 1024:.0f} KiB "
        f"(quality {options.quality}), thumbnail {len(result.thumbnail) / 1024:.1f} KiB\n"
        f"Python {platform.python_version()}, Pillow {PIL.__version__}"
        f" (libjpeg-turbo: {'yes' if turbo else 'no'}), {platform.machine()}, one core pinned,"
        f" {options.runs} runs after {WARMUP} warm-up\n\n"
        f"{'ms':<28} {'p50':>7} {'p99':>7} {'mean':>7} {'min':>7}  {'target':>6}\n"
        f"{row('annotate() + its thumbnail', annotated, TARGET_MS)}\n"
        f"{row('thumbnail() of the upload', thumbs, None)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
