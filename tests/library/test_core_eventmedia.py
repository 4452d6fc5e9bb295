"""core.eventmedia with real Pillow and ffmpeg: key frame, per-detection pictures, the clips."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import io
import json
import logging
from pathlib import Path
import subprocess
from typing import Any

from PIL import Image
import pytest

from custom_components.ai_security.core import incident_clip
from custom_components.ai_security.core.derived import DerivedMedia
from custom_components.ai_security.core.eventmedia import render_event_media
from custom_components.ai_security.core.incident_clip import SpanUpload, render_incident_clip
from custom_components.ai_security.core.models import (
    BoundingBox,
    Detection,
    EventSource,
    MediaType,
    RiskLevel,
    SecurityEvent,
)
from tests.programs import require_program

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


async def test_key_frame_left_alone_when_not_asked_for(tmp_path: Path) -> None:
    """key_frame=False: the frames are drawn, the key frame is neither written nor announced."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    dim = upload(uploads, "a.jpg", (10, 10, 10))
    bright = upload(uploads, "b.jpg", (200, 200, 200))
    media = DerivedMedia(tmp_path / "media")
    key = media.key_frame_path("front_door", "e1", START)
    key.parent.mkdir(parents=True)
    key.write_bytes(b"the picture a phone shows")
    announced: list[Path] = []
    made = await render_event_media(
        event(),
        [found(1, dim, 0.6), found(2, bright, 0.95, seconds=5)],
        media,
        run_blocking=to_thread,
        clip=False,
        key_frame=False,
        on_key_frame=announced.append,
    )
    assert (made.key_frame, made.clip, made.frames) == (None, None, 2)
    assert key.read_bytes() == b"the picture a phone shows"
    assert announced == []
    assert media.frame_path("front_door", "e1", START, 2).exists()
    # Asked for (the default), it is drawn and announced as before.
    made = await render_event_media(
        event(),
        [found(2, bright, 0.95)],
        media,
        run_blocking=to_thread,
        on_key_frame=announced.append,
    )
    assert made.key_frame == key
    assert announced == [key]
    assert key.read_bytes()[:2] == b"\xff\xd8"


GREY = (128, 128, 128)
PERSON = (0xE7, 0x48, 0x56)
"""annotate.py's colour of a person's box."""


def near(pixel: object, color: tuple[int, int, int], tolerance: int) -> bool:
    """Return whether an RGB pixel is within tolerance of color on every channel."""
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, color, strict=True))


def frame_at(clip: Path, at: float) -> Image.Image:
    """Return the clip's first frame at or after `at` seconds, decoded by ffmpeg."""
    data = subprocess.run(
        [
            *(require_program("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-ss", f"{at:.3f}", "-i", str(clip), "-frames:v", "1", "-f", "image2pipe"),
            *("-c:v", "png", "-"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return Image.open(io.BytesIO(data)).convert("RGB")


def frames_of(clip: Path) -> dict[str, object]:
    """Return ffprobe's frame count and duration of the clip's video."""
    output = subprocess.run(
        [
            require_program("ffprobe"),
            *("-v", "error", "-count_frames", "-select_streams", "v:0"),
            *("-show_entries", "stream=nb_read_frames,width,height:format=duration"),
            *("-of", "json", str(clip)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    report = json.loads(output)
    (stream,) = report["streams"]
    return {
        "frames": int(stream["nb_read_frames"]),
        "duration": float(report["format"]["duration"]),
        "size": (stream["width"], stream["height"]),
    }


def level(value: int) -> tuple[int, int, int]:
    """Return a grey of that level."""
    return (value, value, value)


def person(detection_id: int, path: Path, at: datetime, **frame: Any) -> Detection:
    """Return a person found in path at `at`, boxed at 200,150 300x400 of a 1280x720 frame."""
    return Detection(
        detection_id=detection_id,
        camera_id="front_door",
        label="person",
        confidence=0.9,
        bbox=frame.pop("bbox", BoundingBox(x=200, y=150, w=300, h=400)),
        detected_at=at,
        frame_width=frame.pop("width", 1280),
        frame_height=frame.pop("height", 720),
        frame_time=frame.pop("frame_time", None),
        path=str(path),
    )


def image_upload(path: Path, seconds: float) -> SpanUpload:
    """Return the image upload at path, received `seconds` after the incident started."""
    return SpanUpload(
        path=str(path), received_at=START + timedelta(seconds=seconds), media_type=MediaType.IMAGE
    )


async def test_incident_clip_shows_every_upload_with_its_boxes(tmp_path: Path) -> None:
    """Six uploads 2 s apart, two with a person: six stills, 2 s each, boxes where they were."""
    require_program("ffmpeg")
    root = tmp_path / "cameras"
    camera = root / "front"
    camera.mkdir(parents=True)
    levels = [40, 70, 100, 130, 160, 190]
    paths = [camera / f"{index}.jpg" for index in range(6)]
    for path, value in zip(paths, levels, strict=True):
        Image.new("RGB", (1280, 720), level(value)).save(path, "JPEG", quality=95)
    detections = [
        person(1, paths[2], START + timedelta(seconds=4)),
        person(2, paths[4], START + timedelta(seconds=8)),
    ]
    media = DerivedMedia(tmp_path / "media")
    clip = await render_incident_clip(
        event(),
        detections,
        [image_upload(path, 2 * index) for index, path in enumerate(paths)],
        media,
        run_blocking=to_thread,
        camera_root=str(root),
    )
    assert clip == media.clip_path("front_door", "e1", START)
    info = await asyncio.to_thread(frames_of, clip)
    # Each upload until the next: 2 s (10 frames at 5 a second); the last one 1 s.
    assert info == {"frames": 55, "duration": pytest.approx(11.0, abs=0.05), "size": (1280, 720)}
    for index, value in enumerate(levels):
        frame = await asyncio.to_thread(frame_at, clip, 2 * index + 0.5)
        assert near(frame.getpixel((900, 600)), level(value), 8), index  # away from the box
        edge = frame.getpixel((201, 350))  # the box's left edge (2 px wide at 720 lines)
        if index in {2, 4}:
            assert near(edge, PERSON, 45), (index, edge)
        else:
            assert near(edge, level(value), 8), (index, edge)
    # The annotated stills were temporary: only the clip is left in the event's folder.
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"]


async def test_incident_clip_skips_missing_and_broken_uploads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted upload and one that is no picture are left out; the next one takes their time."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    first = upload(uploads, "first.jpg", (200, 30, 30))
    junk = uploads / "junk.jpg"
    junk.write_bytes(b"no picture" * 100)
    last = upload(uploads, "last.jpg", (30, 30, 200))
    media = DerivedMedia(tmp_path / "media")
    caplog.set_level(logging.DEBUG, "custom_components.ai_security.core.incident_clip")
    called: list[str] = []

    async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
        called.append(function.__name__)
        return await asyncio.to_thread(function, *args)

    clip = await render_incident_clip(
        event(),
        [found(1, uploads / "gone.jpg", 0.9, seconds=1)],
        [
            image_upload(first, 0),
            image_upload(uploads / "gone.jpg", 1),
            image_upload(junk, 1.5),
            image_upload(last, 2),
        ],
        media,
        run_blocking=run_blocking,
    )
    assert clip is not None
    # Reading, drawing and writing stills, and removing them, all ran off the event loop.
    assert called == [
        *["_draw_still"] * 4,
        *("_largest_size", "_make_folder", "_write_listing", "replace", "_unlink"),
        "_remove_folder",
    ]
    info = await asyncio.to_thread(frames_of, clip)
    assert (info["frames"], info["duration"]) == (15, pytest.approx(3.0, abs=0.05))  # 2 s + 1 s
    assert near(
        (await asyncio.to_thread(frame_at, clip, 0.5)).getpixel((160, 120)), (200, 30, 30), 20
    )
    assert near(
        (await asyncio.to_thread(frame_at, clip, 2.5)).getpixel((160, 120)), (30, 30, 200), 20
    )
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("gone.jpg" in message for message in skipped)
    assert any("junk.jpg" in message for message in skipped)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_incident_clip_needs_two_pictures_and_ffmpeg(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One picture makes no clip; a clip ffmpeg cannot make is a warning and None."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    only = upload(uploads, "only.jpg", (50, 50, 50))
    other = upload(uploads, "other.jpg", (90, 90, 90))
    media = DerivedMedia(tmp_path / "media")
    one = await render_incident_clip(
        event(), [found(1, only, 0.9)], [image_upload(only, 0)], media, run_blocking=to_thread
    )
    assert one is None
    broken = await render_incident_clip(
        event(),
        [found(1, only, 0.9)],
        [image_upload(only, 0), image_upload(other, 3)],
        media,
        run_blocking=to_thread,
        ffmpeg="/nonexistent/ffmpeg",
    )
    assert broken is None
    assert "No clip for event e1: ffmpeg is not installed" in caplog.text
    assert list(media.event_dir("front_door", "e1", START).iterdir()) == []


async def test_incident_clip_caps_its_stills_keeping_those_with_detections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the cap: every upload with a detection stays, the others are spread evenly."""
    require_program("ffmpeg")
    monkeypatch.setattr(incident_clip, "INCIDENT_FRAMES", 6)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    levels = [10 + 12 * index for index in range(20)]
    paths = []
    for index, value in enumerate(levels):
        paths.append(uploads / f"{index:02d}.jpg")
        Image.new("RGB", (64, 48), level(value)).save(paths[-1], "JPEG", quality=95)
    seen = [3, 11, 12, 17]
    small = BoundingBox(x=1, y=1, w=4, h=4)
    detections = [
        person(
            index, paths[index], START + timedelta(seconds=index), bbox=small, width=64, height=48
        )
        for index in seen
    ]
    clip = await render_incident_clip(
        event(),
        detections,
        [image_upload(path, index) for index, path in enumerate(paths)],
        DerivedMedia(tmp_path / "media"),
        run_blocking=to_thread,
    )
    assert clip is not None
    shown = await asyncio.to_thread(uploads_shown, clip, levels)
    assert len(shown) == 6
    assert set(seen) <= set(shown)
    assert shown == sorted(shown)
    assert {0, 19} & set(shown)  # the two others spread over the incident, its first or last
    # Without the cap every upload is there.
    monkeypatch.setattr(incident_clip, "INCIDENT_FRAMES", 150)
    clip = await render_incident_clip(
        event(),
        detections,
        [image_upload(path, index) for index, path in enumerate(paths)],
        DerivedMedia(tmp_path / "media"),
        run_blocking=to_thread,
    )
    assert clip is not None
    assert await asyncio.to_thread(uploads_shown, clip, levels) == list(range(20))


def uploads_shown(clip: Path, levels: list[int]) -> list[int]:
    """Return the uploads the clip shows, in order: each frame's grey matched to an upload's."""
    pixels = subprocess.run(
        [
            *(require_program("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-i", str(clip), "-vf", "crop=2:2:40:30,scale=1:1"),
            *("-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    shown: list[int] = []
    for value in pixels:
        index = min(range(len(levels)), key=lambda candidate: abs(levels[candidate] - value))
        if not shown or shown[-1] != index:
            shown.append(index)
    return shown


async def test_a_long_incident_plays_in_about_a_minute_and_a_half(tmp_path: Path) -> None:
    """Ten minutes of uploads every 6 s: sped up, each shown for about 1 s, not 6 s or 3 s."""
    require_program("ffmpeg")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    spans = []
    for index in range(101):
        path = upload(uploads, f"{index:03d}.jpg", (index, 100, 100))
        spans.append(image_upload(path, 6 * index))
    clip = await render_incident_clip(
        event(), [], spans, DerivedMedia(tmp_path / "media"), run_blocking=to_thread
    )
    assert clip is not None
    info = await asyncio.to_thread(frames_of, clip)
    assert 80 <= float(info["duration"]) <= 110  # type: ignore[arg-type]


@pytest.fixture
def grey_video(tmp_path: Path) -> Path:
    """Return a 10 s 640x480 grey H.264 video: a box drawn on it stands out."""
    return video(tmp_path / "grey.mp4", "0x808080")


def video(path: Path, color: str) -> Path:
    """Write a 10 s 640x480 H.264 video of one colour to path."""
    subprocess.run(
        [
            *(require_program("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", f"color=c={color}:size=640x480:rate=25:duration=10"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_incident_clip_cut_from_its_video_with_boxes(
    tmp_path: Path, grey_video: Path
) -> None:
    """The busiest video is cut 2 s either side of its detections, their boxes drawn on it.

    Each box is scaled from the detector's frame and shown for a second from its frame's time.
    """
    blue = await asyncio.to_thread(video, tmp_path / "blue.mp4", "0x2020C0")
    at = START + timedelta(seconds=1)
    # The detector saw 320x240 frames: the box lands at 160,120 320x240 of the 640x480 video.
    half = BoundingBox(x=80, y=60, w=160, h=120)
    detections = [
        person(1, blue, at, bbox=half, width=320, height=240, frame_time=1.0),
        person(2, grey_video, at, bbox=half, width=320, height=240, frame_time=3.0),
        person(3, grey_video, at, bbox=half, width=320, height=240, frame_time=5.0),
    ]
    clip = await render_incident_clip(
        event(),
        detections,
        [
            SpanUpload(path=str(blue), received_at=START, media_type=MediaType.VIDEO),
            SpanUpload(path=str(grey_video), received_at=at, media_type=MediaType.VIDEO),
        ],
        DerivedMedia(tmp_path / "media"),
        run_blocking=to_thread,
        camera_root=str(tmp_path),
    )
    assert clip is not None
    info = await asyncio.to_thread(frames_of, clip)
    assert info["duration"] == pytest.approx(6.0, abs=0.1)  # 1 s to 7 s of the source
    # In the cut, the boxes show from 2 s to 3 s and from 4 s to 5 s.
    for second, drawn in (
        (0.5, False),
        (2.0, True),
        (2.5, True),
        (3.5, False),
        (4.5, True),
        (5.5, False),
    ):
        frame = await asyncio.to_thread(frame_at, clip, second)
        assert near(frame.getpixel((320, 400)), GREY, 12)  # the grey video, not the blue one
        edge = frame.getpixel((161, 240))
        assert near(edge, PERSON, 45) if drawn else near(edge, GREY, 12), (second, edge)


async def test_incident_clip_of_a_video_that_is_gone(tmp_path: Path) -> None:
    """The video deleted since: its pictures make the clip when there are any, else no clip."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    gone = uploads / "gone.mp4"
    detections = [person(1, gone, START, frame_time=1.0), person(2, gone, START, frame_time=2.0)]
    media = DerivedMedia(tmp_path / "media")
    assert (
        await render_incident_clip(
            event(), detections, [], media, run_blocking=to_thread, camera_root=str(tmp_path)
        )
        is None
    )
    stills = [upload(uploads, name, (90, 90, 90)) for name in ("a.jpg", "b.jpg")]
    clip = await render_incident_clip(
        event(),
        detections,
        [image_upload(path, 2 * index) for index, path in enumerate(stills)],
        media,
        run_blocking=to_thread,
        camera_root=str(tmp_path),
    )
    assert clip is not None
    assert (await asyncio.to_thread(frames_of, clip))["frames"] == 15  # 2 s + 1 s


async def test_a_picture_in_memory_is_drawn_without_reading_the_upload(tmp_path: Path) -> None:
    """The image the detector was just sent makes the key frame: no file read, no ffmpeg run.

    The uploads named here do not exist (a still) or hold another picture (a video whose frame
    would be blue): the key frame shows the bytes given.
    """
    media = DerivedMedia(tmp_path / "media")
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (0, 200, 0)).save(buffer, "JPEG", quality=95)
    green = buffer.getvalue()
    for name, detection in (
        ("still", found(1, tmp_path / "nowhere.jpg", 0.9)),
        ("video", found(2, video(tmp_path / "blue.mp4", "blue"), 0.9, frame_time=3.0)),
    ):
        made = await render_event_media(
            event(name),
            [detection],
            media,
            run_blocking=to_thread,
            clip=False,
            pictures={(detection.path, detection.frame_time): green},
        )
        assert made.key_frame is not None, name
        with Image.open(made.key_frame) as key:
            assert near(key.convert("RGB").getpixel((300, 220)), (0, 200, 0), 20), name
    # Without it the missing still makes no picture at all.
    none = await render_event_media(
        event("none"), [found(3, tmp_path / "nowhere.jpg", 0.9)], media, run_blocking=to_thread
    )
    assert none.key_frame is None
