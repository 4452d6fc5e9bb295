"""The demo's camera feeder: real uploads that the reference detector's HOG backend finds people in.

The demo is only worth something if what the feeder writes becomes detections and events, so
the test runs the feeder as the demo does (a process) and runs the real HOG detector over its
snapshots; its clips must be real H.264 that ffprobe reads.
"""

import datetime as dt
import itertools
import json
from pathlib import Path
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from custom_components.ai_security.core.learned_spots import iou
from scripts.demo.feeder import STATUE_FEET, Camera, Feeder, render, scene_for
from scripts.detection_server.backends import HogBackend
from scripts.detection_server.images import decode_image
from tests.programs import require_program
from tests.reference_detector import REPO


def feed(root: Path, *options: str) -> list[Path]:
    """Run the feeder with options; return the files it left under root (dotfiles included)."""
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo.feeder", "--root", str(root), "--seed", "1", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "feeder: wrote" in done.stderr
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_one_round_is_a_person_per_camera_that_hog_finds(tmp_path: Path) -> None:
    """--once: one 1280x720 JPEG per camera, in dated folders, each with a person HOG finds."""
    files = feed(tmp_path, "--once")
    assert [path.relative_to(tmp_path).parts[0] for path in files] == [
        "Driveway",
        "Front Door",
        "Garden",
    ]
    hog = HogBackend()
    hog.load()
    for path in files:
        assert not path.name.startswith(".")
        assert path.suffix == ".jpg"
        assert len(path.relative_to(tmp_path).parts) == 3  # camera / YYYY-MM-DD / file
        image = decode_image(path.read_bytes())
        assert image.size == (1280, 720)
        (found,) = hog.detect([hog.prepare(image)], 0.5)
        assert any(item.label == "person" for item in found), path


def test_clips_are_real_video_and_uploads_leave_no_temporary_files(tmp_path: Path) -> None:
    """A clip every second upload: H.264 MP4s of 3 s that ffprobe reads; no .tmp files stay."""
    ffprobe = require_program("ffprobe")
    files = feed(
        tmp_path, "--cameras", "Porch", "--count", "4", "--interval", "0.01", "--clip-every", "2"
    )
    assert not [path for path in files if path.name.startswith(".")]
    clips = [path for path in files if path.suffix == ".mp4"]
    snapshots = [path for path in files if path.suffix == ".jpg"]
    assert len(clips) == 2
    assert len(snapshots) == 2
    for clip in clips:
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(clip)],
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(probe.stdout)
        (video,) = info["streams"]
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1280, 720)
        assert abs(float(info["format"]["duration"]) - 3.0) < 0.5
    for snapshot in snapshots:
        with Image.open(snapshot) as image:
            assert image.size == (1280, 720)


def test_visits_show_a_person_for_the_visit_and_nobody_between(tmp_path: Path) -> None:
    """Each camera has one visit of 2 minutes every 5 minutes, the cameras' visits staggered."""
    cameras = [Camera(name, index) for index, name in enumerate(("A", "B", "C"))]
    feeder = Feeder(
        root=tmp_path,
        cameras=cameras,
        rng=np.random.default_rng(1),
        clip_every=0,
        visit=120.0,
        gap=180.0,
        started=0.0,
    )
    for camera in cameras:
        seconds = [t for t in range(1000, 1600) if feeder.visiting(camera, float(t))]
        assert len(seconds) == 240  # two visits of 120 s in 10 minutes
        starts = [
            t
            for t in range(1, 1600)
            if feeder.visiting(camera, float(t)) and not feeder.visiting(camera, t - 1.0)
        ]
        assert {b - a for a, b in itertools.pairwise(starts)} == {300}
    assert [next(t for t in range(600) if feeder.visiting(c, float(t))) for c in cameras] == [
        0,
        100,
        200,
    ]
    # The uploads follow: the camera's first upload shows someone (a fresh demo detects at
    # once), then nobody during the gap, then someone during the visit.
    (porch,) = [Camera("Porch", 0)]
    feeder = Feeder(
        root=tmp_path, cameras=[porch], rng=np.random.default_rng(1), clip_every=0, visit=120.0
    )
    feeder.started = time.monotonic() - 150  # within the gap
    feeder.upload(porch)
    feeder.upload(porch)
    assert feeder.totals.with_person == 1
    feeder.started = time.monotonic() - 310  # the next visit
    feeder.upload(porch)
    assert feeder.totals.with_person == 2


def test_the_garden_statue_is_a_person_to_hog_at_one_place(tmp_path: Path) -> None:
    """The demo's repeated false alarm: on empty garden frames HOG finds the statue, always there.

    Its boxes overlap closely from frame to frame (noise and exposure differ), as a learned
    spot needs; the other cameras' empty frames show nobody.
    """
    hog = HogBackend()
    hog.load()
    rng = np.random.default_rng(5)
    boxes = []
    for minute in range(4):
        frame = render(
            scene_for("Garden"),
            "Garden",
            dt.datetime(2026, 12, 2, 3, minute, tzinfo=dt.UTC),
            None,
            rng,
            gain=float(rng.uniform(0.9, 1.1)),
        )
        (found,) = hog.detect([hog.prepare(frame)], 0.5)
        (statue,) = [item for item in found if item.label == "person"]
        x, y, w, h = statue.box
        assert x < STATUE_FEET[0] < x + w  # the box is on the statue
        boxes.append((x / 1280, y / 720, w / 1280, h / 720))
    assert min(iou(a, b) for a, b in itertools.combinations(boxes, 2)) >= 0.8
    empty = render(
        scene_for("Front Door"), "Front Door", dt.datetime(2026, 12, 2, 3, tzinfo=dt.UTC), None, rng
    )
    (found,) = hog.detect([hog.prepare(empty)], 0.5)
    assert not [item for item in found if item.label == "person"]
