"""core.eventmedia with real Pillow and ffmpeg: key frame, per-detection pictures and the clip."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import subprocess
from typing import Any

from PIL import Image
import pytest

from custom_components.ai_security.core.derived import DerivedMedia
from custom_components.ai_security.core.eventmedia import render_event_media
from custom_components.ai_security.core.models import (
    BoundingBox,
    Detection,
    EventSource,
    RiskLevel,
    SecurityEvent,
)

from .programs import require_program

START = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def event(event_id: str = "e1") -> SecurityEvent:
    return SecurityEvent(
        event_id=event_id,
        camera_id="front_door",
        started_at=START,
        ended_at=START + timedelta(seconds=20),
        risk_score=80,
        risk_level=RiskLevel.HIGH,
        summary="person at the door",
        reasoning="night",
        object_types=("person",),
        detection_count=2,
        is_fast_path=False,
        source=EventSource.LLM,
    )


def found(
    detection_id: int,
    path: Path,
    confidence: float,
    *,
    seconds: float = 0.0,
    frame_time: float | None = None,
) -> Detection:
    return Detection(
        detection_id=detection_id,
        camera_id="front_door",
        label="person",
        confidence=confidence,
        bbox=BoundingBox(x=20, y=20, w=60, h=100),
        detected_at=START + timedelta(seconds=seconds),
        frame_width=320,
        frame_height=240,
        frame_time=frame_time,
        path=str(path),
    )


def upload(folder: Path, name: str, color: tuple[int, int, int]) -> Path:
    path = folder / name
    Image.new("RGB", (320, 240), color).save(path, "JPEG", quality=95)
    return path


def probe(path: Path) -> dict[str, object]:
    output = subprocess.run(
        [
            require_program("ffprobe"),
            *("-v", "error", "-show_entries", "stream=codec_name,pix_fmt:format=duration"),
            *("-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    report: dict[str, object] = json.loads(output)
    return report


async def to_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_stills_make_key_frame_thumbnails_and_clip(tmp_path: Path) -> None:
    """The most confident frame is the key frame; each detection gets a thumbnail; 2 stills clip."""
    require_program("ffmpeg")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dim = upload(uploads, "a.jpg", (10, 10, 10))
    bright = upload(uploads, "b.jpg", (200, 200, 200))
    media = DerivedMedia(tmp_path / "media")
    made = await render_event_media(
        event(),
        [found(1, dim, 0.6), found(2, bright, 0.95, seconds=5)],
        media,
        run_blocking=to_thread,
    )
    assert made.frames == 2
    assert made.key_frame == media.key_frame_path("front_door", "e1", START)
    with Image.open(made.key_frame) as key:
        # The key frame is the bright upload (the more confident detection), boxes drawn.
        assert key.getpixel((160, 200))[0] > 150
        red, green, _blue = key.getpixel((20, 70))  # the person colour on the box's left edge
        assert red > 180
        assert green < 120
    for detection_id in (1, 2):
        with Image.open(media.thumbnail_path("front_door", "e1", START, detection_id)) as thumb:
            assert thumb.size == (320, 240)
    assert made.clip == media.clip_path("front_door", "e1", START)
    report = await asyncio.to_thread(probe, made.clip)
    assert report["streams"] == [{"codec_name": "h264", "pix_fmt": "yuv420p"}]


async def test_missing_upload_costs_only_its_pictures(tmp_path: Path) -> None:
    """A deleted upload is skipped; one still left makes a key frame and no clip."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    kept = upload(uploads, "kept.jpg", (50, 50, 50))
    media = DerivedMedia(tmp_path / "media")
    made = await render_event_media(
        event(),
        [found(1, uploads / "gone.jpg", 0.99), found(2, kept, 0.5)],
        media,
        run_blocking=to_thread,
    )
    assert made.frames == 1
    assert made.key_frame is not None
    assert made.clip is None
    none = await render_event_media(
        event("e2"), [found(3, uploads / "gone.jpg", 0.9)], media, run_blocking=to_thread
    )
    assert (none.key_frame, none.clip, none.frames) == (None, None, 0)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return an 8 s H.264 test video."""
    ffmpeg = require_program("ffmpeg")
    path = tmp_path / "clip.mp4"
    subprocess.run(
        [
            *(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc=duration=8:size=320x240:rate=25"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_video_detection_cuts_the_clip_from_its_source(tmp_path: Path, source: Path) -> None:
    """A detection in a video frame: the frame is decoded again and the clip cut around it."""
    media = DerivedMedia(tmp_path / "media")
    made = await render_event_media(
        event(), [found(7, source, 0.9, frame_time=3.0)], media, run_blocking=to_thread
    )
    assert made.key_frame is not None
    assert made.clip is not None
    duration = float((await asyncio.to_thread(probe, made.clip))["format"]["duration"])  # type: ignore[index]
    assert 3.5 <= duration <= 4.5  # 2 s either side of the frame


async def test_pictures_are_never_made_from_files_outside_the_camera_root(tmp_path: Path) -> None:
    """A link put on the way since the upload was stored leads nowhere: no picture of it."""
    root = tmp_path / "cameras"
    (root / "front").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = upload(outside, "secret.jpg", (250, 0, 0))
    (root / "front" / "sub").symlink_to(outside, target_is_directory=True)
    own = upload(root / "front", "own.jpg", (0, 0, 250))
    media = DerivedMedia(tmp_path / "media")
    refused = await render_event_media(
        event("e1"),
        [found(1, root / "front" / "sub" / secret.name, 0.9)],
        media,
        run_blocking=to_thread,
        camera_root=str(root),
    )
    assert refused.key_frame is None
    assert refused.frames == 0
    made = await render_event_media(
        event("e2"), [found(2, own, 0.9)], media, run_blocking=to_thread, camera_root=str(root)
    )
    assert made.key_frame is not None
    assert made.frames == 1
