"""One frame everywhere: pictures with an EXIF orientation, rotated clips, and clips with no frame.

The detection server turns a picture upright by its EXIF orientation (and ffmpeg turns a clip's
frame upright by its rotation) before it finds anything, so boxes come back in the upright frame.
Intake, box validation, zones, the prompt's positions and the annotated pictures must all use that
same frame, or a person at the edge is clipped or dropped as "outside the image". Real Pillow
pictures, real ffmpeg clips, the real pipeline; the detector is the test server answering the box
where the object was painted in the upright frame.
"""

import asyncio
from collections.abc import AsyncIterator
import io
import json
import logging
from pathlib import Path
import subprocess
from typing import Any

from PIL import Image, ImageOps
import pytest

from custom_components.ai_security.core.annotate import annotate, color_for
from custom_components.ai_security.core.jobs import JobKind, JobState
from custom_components.ai_security.core.media import inspect_upload
from custom_components.ai_security.core.models import BoundingBox, Detection
from custom_components.ai_security.core.prompts import position
from custom_components.ai_security.core.zones import ZoneMap, make_zone
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import config, running, wait_for_jobs, wait_until, write
from tests.programs import require_program

type RGB = tuple[int, int, int]
type Box = tuple[int, int, int, int]

BACKGROUND: RGB = (128, 128, 128)
OBJECT: RGB = (40, 60, 220)
MARKER: RGB = (240, 220, 20)
"""A square in the upright frame's top-left corner: it is there only when the frame is upright."""
PERSON: RGB = (0xE7, 0x48, 0x56)
LANDSCAPE = (320, 240)
PORTRAIT = (240, 320)
OBJECTS: dict[tuple[int, int], Box] = {
    # Right of the middle: beyond the stored width (240) of a landscape picture kept on its side.
    LANDSCAPE: (250, 30, 50, 140),
    # Low down: beyond the stored height (240) of a portrait frame kept on its side.
    PORTRAIT: (170, 150, 50, 150),
}
POSITIONS = {LANDSCAPE: "middle-right", PORTRAIT: "bottom-right"}
DOOR = make_zone("door", "entry_point", 0, "0.7,0 1,0 1,1 0.7,1")
"""The right 30 % of the frame, where every object stands."""

STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
"""How a camera stores an upright picture that it tags with each EXIF orientation."""


def scene(size: tuple[int, int]) -> Image.Image:
    """Return the upright picture: grey, a yellow marker top-left, the object where OBJECTS says."""
    image = Image.new("RGB", size, BACKGROUND)
    image.paste(MARKER, (0, 0, 40, 40))
    x, y, w, h = OBJECTS[size]
    image.paste(OBJECT, (x, y, x + w, y + h))
    return image


def oriented_jpeg(orientation: int) -> bytes:
    """Return the landscape scene stored as a camera tagging it with orientation would store it."""
    upright = scene(LANDSCAPE)
    transpose = STORED[orientation]
    stored = upright if transpose is None else upright.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, subsampling=0, exif=exif)
    return buffer.getvalue()


def near(pixel: Any, expected: RGB, tolerance: int = 40) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def assert_upright_with_box(frame: Image.Image, size: tuple[int, int]) -> None:
    """Assert the frame is the upright scene with the person's box drawn around the object."""
    x, y, w, h = OBJECTS[size]
    assert frame.size == size
    checks: dict[str, tuple[tuple[int, int], RGB]] = {
        "marker (top-left when upright)": ((12, 12), MARKER),
        "object": ((x + w // 2, y + h // 2), OBJECT),
        "background": ((size[0] // 2, size[1] - 15), BACKGROUND),
        "box's left edge": ((x, y + h // 2), PERSON),
        "box's bottom edge": ((x + w // 2, y + h - 1), PERSON),
        "left of the box": ((x - 5, y + h // 2), BACKGROUND),
        "inside the box": ((x + 5, y + h // 2), OBJECT),
    }
    wrong = {
        what: (at, frame.getpixel(at), color)
        for what, (at, color) in checks.items()
        if not near(frame.getpixel(at), color)
    }
    assert not wrong, f"not the upright scene with the box on the object: {wrong}"


def assert_found_on_object(found: Detection, size: tuple[int, int]) -> None:
    """Assert a stored detection is the object's box, whole, in the upright frame."""
    x, y, w, h = OBJECTS[size]
    assert (found.frame_width, found.frame_height) == size
    assert (found.bbox.x, found.bbox.y, found.bbox.w, found.bbox.h) == (x, y, w, h)
    assert position(found) == POSITIONS[size]
    assert found.zone == "door"


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    """Return the test detector; each test makes it answer the object's upright box."""
    server = DetectorServer()
    await server.start()
    yield server
    await server.stop()


def finds_the_object(detector: DetectorServer, upright: tuple[int, int]) -> None:
    """Make the detector answer a person on the object, in the upright frame of that size.

    As the detection server does: it turns the picture upright before it looks.
    """
    detector.answer(Reply(body=detections(detection("person", 0.95, OBJECTS[upright]))))


def pipeline_config(root: Path, detector: DetectorServer) -> Any:
    """Return a pipeline without an LLM (the heuristic judges) that makes event pictures."""
    return config(
        root,
        f"sqlite:///{root.parent / 'ai_security.db'}",
        detector.url,
        "",
        media_root=str(root.parent / "media"),
    )


async def written(root: Path, name: str) -> list[Path]:
    """Wait until the pipeline has written an event's media file of this name; return them all.

    Files are renamed into place whole, so one that exists can be read.
    """
    found: list[Path] = []

    async def any_found() -> bool:
        found[:] = await asyncio.to_thread(lambda: sorted((root.parent / "media").rglob(name)))
        return bool(found)

    await wait_until(any_found, what=f"the event's {name}")
    return found


async def key_frames(root: Path) -> list[Image.Image]:
    """Wait for the annotated key frames the pipeline writes; return them decoded."""

    def read(paths: list[Path]) -> list[Image.Image]:
        frames = []
        for path in paths:
            with Image.open(path) as image:
                frames.append(image.convert("RGB"))
        return frames

    return await asyncio.to_thread(read, await written(root, "key.jpg"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fixture_picture_is_the_scene_when_shown(orientation: int) -> None:
    """The generated JPEG shows the scene upright in Pillow, as the detection server turns it."""
    with Image.open(io.BytesIO(oriented_jpeg(orientation))) as stored:
        shown = ImageOps.exif_transpose(stored).convert("RGB")
    expected = scene(LANDSCAPE)
    assert shown.size == expected.size
    for at in ((12, 12), (275, 100), (160, 220)):
        assert near(shown.getpixel(at), expected.getpixel(at), 12)  # type: ignore[arg-type]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_intake_and_annotation_agree_on_the_frame(tmp_path: Path, orientation: int) -> None:
    """Intake records the upright size, the one the annotated picture has, box on the object."""
    content = oriented_jpeg(orientation)
    path = tmp_path / "Cam" / "snap.jpg"
    path.parent.mkdir()
    path.write_bytes(content)
    intake = inspect_upload(str(tmp_path), str(path))
    assert (intake.width, intake.height) == LANDSCAPE
    x, y, w, h = OBJECTS[LANDSCAPE]
    found = Detection(
        label="person",
        confidence=0.95,
        bbox=BoundingBox(x=x, y=y, w=w, h=h),
        frame_width=intake.width,
        frame_height=intake.height,
    )
    assert color_for(found.label) == "#E74856"
    annotated = annotate(content, [found])
    assert (annotated.width, annotated.height) == LANDSCAPE
    with Image.open(io.BytesIO(annotated.jpeg)) as image:
        assert_upright_with_box(image.convert("RGB"), LANDSCAPE)


@pytest.mark.parametrize("orientation", range(1, 9))
async def test_oriented_picture_detected_on_its_object(
    root: Path, detector: DetectorServer, orientation: int
) -> None:
    """Every EXIF orientation: the box is stored whole in the upright frame, drawn on the object."""
    finds_the_object(detector, LANDSCAPE)
    async with running(pipeline_config(root, detector)) as (pipeline, rec):
        pipeline.set_zones({"cam": ZoneMap([DOOR])})
        await asyncio.to_thread(write, root / "Cam" / "snap.jpg", oriented_jpeg(orientation))
        await wait_until(lambda: len(rec.detections) == 1, what="the person on the object")
        ((_camera, found),) = rec.detections
        assert_found_on_object(found, LANDSCAPE)
        await wait_until(lambda: bool(rec.events), what="the event")
        frames = await key_frames(root)
    for frame in frames:
        assert_upright_with_box(frame, LANDSCAPE)


def ffprobe_stream(ffprobe: str, path: Path) -> dict[str, Any]:
    """Return ffprobe's report of the file's first video stream."""
    output = subprocess.run(
        [
            ffprobe,
            *("-v", "error", "-select_streams", "V:0", "-show_streams", "-of", "json"),
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    stream: dict[str, Any] = json.loads(output)["streams"][0]
    return stream


def rotated_clip(folder: Path, clockwise: int) -> Path:
    """Write a 2 s H.264 clip whose frames ffmpeg must turn clockwise degrees to show the scene.

    The frames are stored turned the other way and the turn is set with -display_rotation (the
    display matrix that phones and cameras mounted on their side write), without re-encoding.
    """
    ffmpeg, ffprobe = require_program("ffmpeg"), require_program("ffprobe")
    upright = PORTRAIT if clockwise in {90, 270} else LANDSCAPE
    folder.mkdir(parents=True, exist_ok=True)
    still = folder.parent / f"stored_{clockwise}.png"
    scene(upright).rotate(clockwise, expand=True).save(still)  # Pillow turns counterclockwise
    plain = folder.parent / f"plain_{clockwise}.mp4"
    quiet = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run(
        [
            *(*quiet, "-loop", "1", "-framerate", "25", "-t", "2", "-i", str(still)),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(plain)),
        ],
        check=True,
        timeout=60,
    )
    clip = folder / f"turned_{clockwise}.mp4"
    # -display_rotation is counterclockwise.
    subprocess.run(
        [
            *quiet,
            "-display_rotation",
            str(360 - clockwise),
            "-i",
            str(plain),
            "-c",
            "copy",
            str(clip),
        ],
        check=True,
        timeout=60,
    )
    stream = ffprobe_stream(ffprobe, clip)
    matrices = [
        item
        for item in stream.get("side_data_list", [])
        if item.get("side_data_type") == "Display Matrix"
    ]
    assert matrices, f"ffmpeg wrote no display matrix: {stream}"
    stored = (upright[1], upright[0]) if clockwise in {90, 270} else upright
    assert (stream["width"], stream["height"]) == stored
    return clip


@pytest.mark.parametrize("clockwise", [90, 180, 270])
async def test_rotated_clip_detected_on_its_object(
    root: Path, detector: DetectorServer, clockwise: int
) -> None:
    """A clip with rotation metadata: detected, stored and drawn in the upright frame."""
    upright = PORTRAIT if clockwise in {90, 270} else LANDSCAPE
    clip = await asyncio.to_thread(rotated_clip, root.parent / "made", clockwise)
    finds_the_object(detector, upright)
    async with running(pipeline_config(root, detector)) as (pipeline, rec):
        pipeline.set_zones({"cam": ZoneMap([DOOR])})
        await asyncio.to_thread(write, root / "Cam" / clip.name, clip.read_bytes())
        await wait_until(lambda: len(rec.detections) == 1, what="the person on the object")
        ((_camera, found),) = rec.detections
        assert (detector.requests[0].width, detector.requests[0].height) == upright
        assert_found_on_object(found, upright)
        await wait_until(lambda: bool(rec.events), what="the event")
        frames = await key_frames(root)
        clips = await written(root, "clip.mp4")
    for frame in frames:
        assert_upright_with_box(frame, upright)
    for made in clips:
        # Upright pixels and no rotation left, or players would turn the clip a second time.
        stream = await asyncio.to_thread(ffprobe_stream, require_program("ffprobe"), made)
        assert (stream["width"], stream["height"]) == upright
        assert not stream.get("side_data_list"), stream["side_data_list"]


async def test_audio_only_clip_is_skipped_with_a_warning(
    root: Path, detector: DetectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A clip with only sound has nothing to look at: skipped with a warning, no dead job."""
    ffmpeg = require_program("ffmpeg")
    sound = root / "Cam" / "voice.mp4"
    sound.parent.mkdir()
    await asyncio.to_thread(
        subprocess.run,
        [
            *(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(sound)),
        ],
        check=True,
        timeout=60,
    )
    async with running(pipeline_config(root, detector)) as (pipeline, rec):
        await wait_for_jobs(pipeline, JobKind.DETECT, JobState.DONE, 1)
        assert await pipeline.queue.dead_jobs() == []
        assert await pipeline.queue.counts() == {(JobKind.DETECT, JobState.DONE): 1}
    assert detector.count == 0
    assert rec.detections == []
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("custom_components.ai_security")
    ]
    assert warnings == [f"Skipping {sound}: it has no video stream"]
