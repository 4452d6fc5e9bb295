"""Entry point: python -m scripts.bench_hog_lib [options]; scripts/bench_hog runs it in the lab.

Why: OpenCV's HOG people detector finds one person several times over (the whole person, and
inside it the upper body or the legs at other scales). The reference server merges those boxes
(backends.one_box_per_object); this measures what that changes on the frames the demo sends.

What it does: for each demo camera (the statue left out: it is a false alarm, not a duplicate)
and --seeds seeds, it renders the demo feeder's snapshot of one person standing somewhere,
encodes it as the feeder does (JPEG), decodes it, and runs the server's HogBackend on it twice,
with merging off and on, keeping detections at --threshold (the integration's default, 0.5).
A box is "on the person" when its centre lies on her (within a quarter of her height of her
middle, between her feet and her head), as the integration's NMS test judges it.

The report (stdout): per mode, frames where she was found, boxes on her per frame where found
(mean, and the share of frames with more than one), boxes elsewhere (false alarms), and the
mean time of one detection.
"""

import argparse
from collections.abc import Sequence
import datetime as dt
import io
import statistics
import sys
import time

import numpy as np
from PIL import Image

from scripts.demo import feeder
from scripts.detection_server.backends import Detection, HogBackend

WHEN = dt.datetime(2026, 1, 1, 12, 0, 0)  # noqa: DTZ001 - burned into the picture, as cameras do


def on_the_person(box: tuple[float, ...], scene: feeder.Scene, place: feeder.Placement) -> bool:
    """Return whether the [x, y, w, h] box's centre lies on the person."""
    height = feeder.person_height(scene, place.feet_y)
    centre_x, centre_y = box[0] + box[2] / 2, box[1] + box[3] / 2
    return (
        abs(centre_x - place.centre_x) < 0.25 * height
        and place.feet_y - height < centre_y < place.feet_y
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both modes over the frames and print the report."""
    parser = argparse.ArgumentParser(prog="scripts/bench_hog")
    parser.add_argument("--seeds", type=int, default=30, help="frames per camera (default: 30)")
    parser.add_argument("--threshold", type=float, default=0.5, help="(default: 0.5)")
    args = parser.parse_args(argv)
    modes = {"raw (--no-hog-nms)": HogBackend(nms=False), "merged (default)": HogBackend()}
    for backend in modes.values():
        backend.load()
    found: dict[str, list[int]] = {name: [] for name in modes}
    elsewhere = dict.fromkeys(modes, 0)
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    frames = 0
    for camera in feeder.DEFAULT_CAMERAS:
        scene = feeder.scene_for(camera, statue=False)
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            place = feeder.random_placement(scene, rng)
            picture = feeder.render(scene, camera, WHEN, place, rng)
            data = io.BytesIO()
            picture.save(data, "JPEG", quality=feeder.JPEG_QUALITY)
            image = Image.open(data).convert("RGB")
            frames += 1
            for name, backend in modes.items():
                started = time.perf_counter()
                boxes: list[Detection] = backend.detect([backend.prepare(image)], args.threshold)[0]
                seconds[name].append(time.perf_counter() - started)
                on_her = sum(on_the_person(item.box, scene, place) for item in boxes)
                found[name].append(on_her)
                elsewhere[name] += len(boxes) - on_her
    lines = [
        f"# HOG on {frames} demo frames of one person ({', '.join(feeder.DEFAULT_CAMERAS)}, "
        f"{args.seeds} each), threshold {args.threshold}",
        "mode                 found   boxes on her   frames with 2+   boxes elsewhere   ms/frame",
    ]
    for name in modes:
        hits = [count for count in found[name] if count]
        mean = statistics.fmean(hits) if hits else 0.0
        several = sum(count > 1 for count in hits)
        lines.append(
            f"{name:<20} {len(hits):>3}/{frames:<3} {mean:>12.2f}   {several:>6} "
            f"({100 * several / max(1, len(hits)):.0f} %)   {elsewhere[name]:>15}   "
            f"{1000 * statistics.fmean(seconds[name]):>8.0f}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
