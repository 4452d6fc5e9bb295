"""core.clips: MP4 clips from stills and cut from videos, checked with the lab's real ffprobe."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
import io
import json
import os
from pathlib import Path
import stat
import subprocess
import time
from typing import Any

from PIL import Image
import pytest

from custom_components.ai_security.core.clips import ClipError, TimedBox, make_clip
from custom_components.ai_security.core.video import extract_frame
from tests.programs import require_program

RED, GREEN, BLUE = (230, 20, 20), (20, 200, 20), (20, 20, 230)


@dataclass(frozen=True, kw_only=True)
class Tools:
    """The lab's ffmpeg and ffprobe."""

    ffmpeg: str
    ffprobe: str


@dataclass(frozen=True, kw_only=True)
class ClipInfo:
    """What ffprobe says about a clip."""

    codec: str
    pix_fmt: str
    width: int
    height: int
    duration: float
    frames: int


@pytest.fixture(scope="module")
def tools() -> Tools:
    """Return the lab's ffmpeg and ffprobe (skipped outside CI when missing)."""
    return Tools(ffmpeg=require_program("ffmpeg"), ffprobe=require_program("ffprobe"))


@pytest.fixture(scope="module")
def source(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 10 s 320x240 H.264 test video (small, so cutting it is quick)."""
    path = tmp_path_factory.mktemp("source") / "camera.mp4"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc=duration=10:size=320x240:rate=25"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


def still(folder: Path, name: str, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    """Write a JPEG of one colour and return its path."""
    path = folder / name
    Image.new("RGB", size, color).save(path, "JPEG", quality=95)
    return path


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    """Return three stills of different sizes and aspects (one with odd sides), red-green-blue."""
    folder = tmp_path / "stills"
    folder.mkdir()
    return [
        still(folder, "a.jpg", (640, 480), RED),
        still(folder, "b.jpg", (800, 450), GREEN),
        still(folder, "c.jpg", (333, 251), BLUE),
    ]


def probe(tools: Tools, path: Path) -> ClipInfo:
    """Return ffprobe's view of the clip's video stream, frames counted."""
    report = json.loads(
        subprocess.run(
            [
                *(tools.ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0"),
                *("-print_format", "json", "-show_format", "-show_streams", str(path)),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
    )
    (stream,) = report["streams"]
    return ClipInfo(
        codec=stream["codec_name"],
        pix_fmt=stream["pix_fmt"],
        width=stream["width"],
        height=stream["height"],
        duration=float(report["format"]["duration"]),
        frames=int(stream["nb_read_frames"]),
    )


def near(pixel: object, color: tuple[int, int, int], tolerance: int = 30) -> bool:
    """Return whether an RGB pixel is within tolerance of color on every channel."""
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, color, strict=True))


async def frame_at(tools: Tools, clip: Path, at: float) -> Image.Image:
    """Return the clip's frame at `at` seconds."""
    data = await extract_frame(clip, at, ffmpeg=tools.ffmpeg)
    return Image.open(io.BytesIO(data)).convert("RGB")


def entries(folder: Path) -> list[str]:
    """Return the names of everything in folder."""
    return sorted(path.name for path in folder.iterdir())


def truncated_copy(clip: Path, target: Path) -> Path:
    """Write the first third of clip's bytes to target, as an upload cut short would leave it."""
    target.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    return target


def text_file(path: Path) -> Path:
    """Write a text file that is no video at path."""
    path.write_text("not a video\n" * 50)
    return path


def leftovers(folder: Path) -> list[str]:
    """Return the names of temporary clip files left in folder."""
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def fake_ffmpeg(folder: Path, body: str) -> str:
    """Write a stand-in ffmpeg: body runs with $out set to the output file ffmpeg would write."""
    script = folder / "fake-ffmpeg.sh"
    script.write_text(f'#!/bin/sh\nfor arg; do out="${{arg#file:}}"; done\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


async def test_clip_from_stills(tools: Tools, frames: list[Path], tmp_path: Path) -> None:
    """Three stills of different sizes: H.264, yuv420p, one even size, 1 s each, in order."""
    output = tmp_path / "event" / "clip.mp4"
    assert await make_clip(output, frames=frames, ffmpeg=tools.ffmpeg) == output
    info = probe(tools, output)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height) == (800, 480)  # the largest width and height
    assert info.width % 2 == 0
    assert info.height % 2 == 0
    assert info.duration == pytest.approx(3.0, abs=0.1)
    assert info.frames == 15  # 5 frames a second, 5 per still
    data = output.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: index first
    assert b"moof" not in data  # one plain MP4, not fragments
    first, second, third = [await frame_at(tools, output, at) for at in (0.5, 1.5, 2.5)]
    assert near(first.getpixel((400, 240)), RED)
    assert near(first.getpixel((5, 240)), (0, 0, 0), 16)  # 4:3 padded into 800x480
    assert near(second.getpixel((400, 240)), GREEN)
    assert near(second.getpixel((400, 5)), (0, 0, 0), 16)  # 16:9 padded top and bottom
    assert near(third.getpixel((400, 240)), BLUE)
    assert leftovers(output.parent) == []


@pytest.mark.parametrize(
    ("fps", "duration", "count"), [(2.0, 1.5, 9), (0.5, 6.0, 30), (3.0, 1.0, 6)]
)
async def test_clip_from_stills_at_a_rate(
    tools: Tools, frames: list[Path], tmp_path: Path, fps: float, duration: float, count: int
) -> None:
    """The rate sets how long each still shows; each is a whole number of frames, >= 5 fps."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, frames=frames, fps=fps, ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert info.duration == pytest.approx(duration, abs=0.1)
    assert info.frames == count


async def test_clip_size_given_made_even(tools: Tools, frames: list[Path], tmp_path: Path) -> None:
    """A given size is rounded down to even sides; oversized ones are scaled to 1920."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, frames=frames[:1], size=(321, 241), ffmpeg=tools.ffmpeg)
    assert (probe(tools, output).width, probe(tools, output).height) == (320, 240)
    await make_clip(output, frames=frames[:1], size=(3840, 2160), ffmpeg=tools.ffmpeg)
    assert (probe(tools, output).width, probe(tools, output).height) == (1920, 1080)


async def test_cut_from_video(tools: Tools, source: Path, tmp_path: Path) -> None:
    """A span of 4-5 s in a 10 s video gives 2-7 s: 5 s, re-encoded as browsers play it."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, source=source, start=4.0, end=5.0, ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert info.duration == pytest.approx(5.0, abs=0.5)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 320, 240)
    assert leftovers(tmp_path) == []


async def test_stills_each_shown_for_its_own_time(
    tools: Tools, frames: list[Path], tmp_path: Path
) -> None:
    """durations: each still is shown for its own seconds, rounded to whole frames at 5 a second."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, frames=frames, durations=[1.2, 0.2, 3.0], ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert info.duration == pytest.approx(4.4, abs=0.05)
    assert colors_of_frames(tools, output, (400, 240)) == "R" * 6 + "G" + "B" * 15
    # A still shown for less than a fifth of a second raises the rate: 10 a second here.
    await make_clip(output, frames=frames[:2], durations=[0.1, 0.5], ffmpeg=tools.ffmpeg)
    assert probe(tools, output).duration == pytest.approx(0.6, abs=0.05)
    assert colors_of_frames(tools, output, (400, 240)) == "R" + "G" * 5
    assert leftovers(tmp_path) == []
    assert entries(tmp_path) == ["clip.mp4", "stills"]  # the list of stills is gone too


@pytest.mark.parametrize("fps", [30.0, 60.0])
async def test_stills_at_high_rates_keep_their_frames(
    tools: Tools, frames: list[Path], tmp_path: Path, fps: float
) -> None:
    """At 30 or 60 stills a second each still is still exactly one frame, in order."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, frames=frames * 4, fps=fps, ffmpeg=tools.ffmpeg)
    assert colors_of_frames(tools, output, (400, 240)) == "RGB" * 4
    await make_clip(output, frames=frames * 4, durations=[1 / fps] * 12, ffmpeg=tools.ffmpeg)
    assert colors_of_frames(tools, output, (400, 240)) == "RGB" * 4


async def test_many_stills_with_awkward_names(tools: Tools, tmp_path: Path) -> None:
    """Stills go to ffmpeg as one list: hundreds of them, quotes and dashes in their names."""
    colors = [RED, GREEN, BLUE]
    names = ["it's a 'still'.jpg", "-dash.jpg", "plain.jpg"]
    stills = [
        still(tmp_path, f"{index:03d}{names[index % 3]}", (64, 48), colors[index % 3])
        for index in range(300)
    ]
    stills[1] = still(tmp_path, "-dash.jpg", (64, 48), GREEN)
    output = tmp_path / "clips" / "clip.mp4"
    await make_clip(output, frames=stills, durations=[0.2] * 300, ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert (info.width, info.height) == (64, 48)
    assert colors_of_frames(tools, output, (32, 24)) == "RGB" * 100
    assert entries(output.parent) == ["clip.mp4"]


def colors_of_frames(tools: Tools, clip: Path, at: tuple[int, int]) -> str:
    """Return which of red, green and blue is strongest at `at`, one letter for each frame."""
    x, y = at
    pixels = subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(clip)),
            *("-vf", f"crop=2:2:{x}:{y},scale=1:1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return "".join(
        "RGB"[max(range(3), key=lambda channel: pixels[index + channel])]
        for index in range(0, len(pixels), 3)
    )


PERSON = "#E74856"
"""annotate.py's person colour."""


def color_of(hex_color: str) -> tuple[int, int, int]:
    """Return "#RRGGBB" as an RGB tuple."""
    return (int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16))


@pytest.fixture(scope="module")
def grey_source(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 10 s 640x480 grey H.264 video: a drawn box stands out on it."""
    path = tmp_path_factory.mktemp("grey") / "camera.mp4"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "color=c=0x808080:size=640x480:rate=25:duration=10"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_cut_with_boxes_drawn_over_their_time(
    tools: Tools, grey_source: Path, tmp_path: Path
) -> None:
    """A box drawn from 4 s to 5 s of the source shows 2-3 s into the cut (which starts at 2 s)."""
    output = tmp_path / "clip.mp4"
    box = TimedBox(left=0.25, top=0.25, width=0.5, height=0.5, start=4.0, end=5.0, color=PERSON)
    await make_clip(
        output, source=grey_source, start=4.0, end=6.0, boxes=[box], ffmpeg=tools.ffmpeg
    )
    assert probe(tools, output).duration == pytest.approx(6.0, abs=0.1)
    grey = (128, 128, 128)
    for at, drawn in (
        (1.0, False),
        (1.9, False),
        (2.0, True),
        (2.5, True),
        (2.96, True),
        (3.04, False),
        (4.0, False),
    ):
        frame = await frame_at(tools, output, at)
        edge = frame.getpixel((161, 240))  # the box's left edge: x = 640 * 0.25
        assert near(edge, color_of(PERSON), 40) if drawn else near(edge, grey, 12), (at, edge)
        assert near(frame.getpixel((320, 240)), grey, 12)  # an outline, not a filled box
        assert near(frame.getpixel((100, 240)), grey, 12)


@pytest.fixture(scope="module")
def grey_sideways(
    tools: Tools, grey_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Return the grey video turned 90 degrees clockwise to show, as sideways_source is."""
    path = tmp_path_factory.mktemp("grey-sideways") / "camera.mp4"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-display_rotation", "270", "-i", str(grey_source), "-c", "copy", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_boxes_on_a_rotated_video_are_placed_upright(
    tools: Tools, grey_sideways: Path, tmp_path: Path
) -> None:
    """A box given in the upright frame (as the detector saw it) lands there on a turned video."""
    output = tmp_path / "clip.mp4"
    # Upright the video is 480x640: this box's left edge is at x = 48, from y = 320 to 576.
    box = TimedBox(left=0.1, top=0.5, width=0.5, height=0.4, start=0.0, end=10.0, color=PERSON)
    await make_clip(
        output, source=grey_sideways, start=1.0, end=2.0, boxes=[box], ffmpeg=tools.ffmpeg
    )
    info = probe(tools, output)
    assert (info.width, info.height) == (480, 640)
    frame = await frame_at(tools, output, 1.0)
    assert near(frame.getpixel((49, 448)), color_of(PERSON), 40)
    assert near(frame.getpixel((49, 200)), (128, 128, 128), 12)  # above the box: nothing drawn


@pytest.fixture(scope="module")
def sideways_source(tools: Tools, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the test video with a display matrix that turns it 90 degrees clockwise to show.

    As a camera mounted on its side writes it; set without re-encoding (-display_rotation is
    counterclockwise), and checked with ffprobe.
    """
    path = tmp_path_factory.mktemp("sideways") / "camera.mp4"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-display_rotation", "270", "-i", str(source), "-c", "copy", str(path)),
        ],
        check=True,
        timeout=60,
    )
    assert side_data(tools, path) == ["Display Matrix"]
    return path


async def test_cut_from_rotated_video_is_upright(
    tools: Tools, source: Path, sideways_source: Path, tmp_path: Path
) -> None:
    """A video with rotation metadata is cut upright, the rotation spent: no player turns it again.

    The detections drawn on its frames are in the upright frame, so the clip must be too.
    """
    output = tmp_path / "clip.mp4"
    await make_clip(output, source=sideways_source, start=4.0, end=5.0, ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert (info.width, info.height) == (240, 320)
    assert side_data(tools, output) == []
    upright = await frame_at(tools, output, 1.0)
    stored = await frame_at(tools, source, 3.0)
    expected = stored.transpose(Image.Transpose.ROTATE_270)  # 90 clockwise
    for at in ((40, 40), (200, 100), (120, 280)):
        assert near(upright.getpixel(at), expected.getpixel(at), 40)  # type: ignore[arg-type]


def side_data(tools: Tools, path: Path) -> list[str]:
    """Return the kinds of side data ffprobe shows on the file's video stream."""
    report = json.loads(
        subprocess.run(
            [
                *(tools.ffprobe, "-v", "error", "-select_streams", "v:0", "-show_streams"),
                *("-of", "json", str(path)),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
    )
    (stream,) = report["streams"]
    return [item["side_data_type"] for item in stream.get("side_data_list", [])]


async def test_stills_with_exif_orientation_make_an_upright_clip(
    tools: Tools, tmp_path: Path
) -> None:
    """A still is shown turned by its EXIF orientation (ffmpeg does so): the clip is upright."""
    stored = Image.new("RGB", (640, 480), GREEN)
    stored.paste(RED, (0, 0, 320, 240))
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to show
    path = tmp_path / "portrait.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    output = tmp_path / "clip.mp4"
    await make_clip(output, frames=[path], ffmpeg=tools.ffmpeg)
    info = probe(tools, output)
    assert (info.width, info.height) == (480, 640)
    frame = await frame_at(tools, output, 0.5)
    assert near(frame.getpixel((360, 160)), RED)  # the stored top-left, now top-right
    assert near(frame.getpixel((120, 480)), GREEN)


@pytest.fixture(scope="module")
def mjpeg_source(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 3 s MJPEG video as cameras send it: full range (yuvj420p), odd size 333x251."""
    path = tmp_path_factory.mktemp("mjpeg") / "camera.avi"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc=duration=3:size=333x251:rate=10"),
            *("-c:v", "mjpeg", "-pix_fmt", "yuvj420p", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_cut_from_full_range_odd_video(
    tools: Tools, mjpeg_source: Path, tmp_path: Path
) -> None:
    """An MJPEG camera's full-range, odd-sized video comes out yuv420p with even sides."""
    output = tmp_path / "clip.mp4"
    await make_clip(
        output, source=mjpeg_source, start=1.0, end=1.5, margin=0.5, ffmpeg=tools.ffmpeg
    )
    info = probe(tools, output)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 332, 250)
    assert info.duration == pytest.approx(1.5, abs=0.2)


@pytest.mark.parametrize(
    ("start", "end", "duration"),
    [(1.0, 2.0, 4.0), (9.0, 9.5, 3.0), (5.0, None, 4.0), (0.0, 10.0, 10.0)],
)
async def test_cut_clamped_to_the_video(
    tools: Tools, source: Path, tmp_path: Path, start: float, end: float | None, duration: float
) -> None:
    """The margin stops at the video's start and end; no end means one moment."""
    output = tmp_path / "clip.mp4"
    await make_clip(output, source=source, start=start, end=end, ffmpeg=tools.ffmpeg)
    assert probe(tools, output).duration == pytest.approx(duration, abs=0.5)


async def test_cut_past_the_end(tools: Tools, source: Path, tmp_path: Path) -> None:
    """A span after the video's end encodes nothing: an error, no empty clip."""
    output = tmp_path / "clip.mp4"
    with pytest.raises(ClipError, match="no frames"):
        await make_clip(output, source=source, start=30.0, end=31.0, ffmpeg=tools.ffmpeg)
    assert entries(tmp_path) == []


async def test_corrupt_source(tools: Tools, source: Path, tmp_path: Path) -> None:
    """A source ffmpeg cannot read is a ClipError that says so, and leaves nothing behind."""
    corrupt = truncated_copy(source, tmp_path / "corrupt.mp4")
    output = tmp_path / "out" / "clip.mp4"
    with pytest.raises(ClipError, match=r"ffmpeg could not make the clip: .*Invalid data"):
        await make_clip(output, source=corrupt, start=4.0, end=5.0, ffmpeg=tools.ffmpeg)
    assert entries(output.parent) == []
    text = text_file(tmp_path / "notes.mp4")
    with pytest.raises(ClipError, match="Invalid data"):
        await make_clip(output, source=text, start=0.0, end=1.0, ffmpeg=tools.ffmpeg)
    with pytest.raises(ClipError, match="does not exist"):
        await make_clip(output, source=tmp_path / "gone.mp4", start=0, end=1, ffmpeg=tools.ffmpeg)


@pytest.fixture(scope="module")
def audio_only(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 2 s AAC file: sound, no picture."""
    path = tmp_path_factory.mktemp("audio") / "audio.m4a"
    subprocess.run(
        [
            *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


async def test_source_without_video(tools: Tools, audio_only: Path, tmp_path: Path) -> None:
    """A sound-only file is not cut into an empty clip."""
    audio = audio_only
    with pytest.raises(ClipError, match=r"^the source has no video stream$"):
        await make_clip(tmp_path / "clip.mp4", source=audio, start=0, end=1, ffmpeg=tools.ffmpeg)
    assert entries(tmp_path) == []


async def test_folder_or_rename_refused(tools: Tools, frames: list[Path], tmp_path: Path) -> None:
    """A folder that cannot be made or a rename that fails is a ClipError; no part file stays."""
    blocker = text_file(tmp_path / "not-a-folder")
    with pytest.raises(ClipError, match="cannot create the clip's folder"):
        await make_clip(blocker / "clip.mp4", frames=frames, ffmpeg=tools.ffmpeg)

    async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
        if function is os.replace:
            raise PermissionError(13, "Permission denied")
        return await asyncio.to_thread(function, *args)

    output = tmp_path / "clips" / "clip.mp4"
    with pytest.raises(ClipError, match=r"cannot store the clip: .*Permission denied"):
        await make_clip(output, frames=frames, ffmpeg=tools.ffmpeg, run_blocking=run_blocking)
    assert entries(output.parent) == []


async def test_bad_stills(tools: Tools, frames: list[Path], tmp_path: Path) -> None:
    """A missing or unreadable still is named, before or by ffmpeg."""
    output = tmp_path / "clip.mp4"
    with pytest.raises(ClipError, match=r"a frame does not exist: .*gone\.jpg"):
        await make_clip(output, frames=[*frames, tmp_path / "gone.jpg"], ffmpeg=tools.ffmpeg)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"junk" * 100)
    with pytest.raises(ClipError, match=r"not a readable image: .*junk\.jpg"):
        await make_clip(output, frames=[junk], ffmpeg=tools.ffmpeg)
    with pytest.raises(ClipError, match="ffmpeg could not make the clip"):
        await make_clip(output, frames=[junk], size=(640, 480), ffmpeg=tools.ffmpeg)
    assert not output.exists()
    assert leftovers(tmp_path) == []


async def test_missing_ffmpeg(frames: list[Path], tmp_path: Path) -> None:
    """A program that does not exist is reported as not installed."""
    with pytest.raises(ClipError, match=r"^ffmpeg is not installed") as caught:
        await make_clip(tmp_path / "clip.mp4", frames=frames, ffmpeg="/nonexistent/ffmpeg")
    assert "/nonexistent/ffmpeg" in caught.value.reason
    with pytest.raises(ClipError, match=r"^ffmpeg is not installed"):
        await make_clip(tmp_path / "clip.mp4", frames=frames, ffmpeg="ai-security-no-such-ffmpeg")


async def test_timeout_kills_and_cleans_up(tmp_path: Path, frames: list[Path]) -> None:
    """A stuck ffmpeg is killed after the time limit and its part-written file removed."""
    ffmpeg = fake_ffmpeg(tmp_path, 'echo partial > "$out"\nsleep 10')
    output = tmp_path / "clips" / "clip.mp4"
    started = time.monotonic()
    with pytest.raises(ClipError, match=r"^ffmpeg timed out after 0\.5 s$"):
        await make_clip(output, frames=frames, ffmpeg=ffmpeg, time_limit=0.5)
    assert time.monotonic() - started < 3
    assert entries(output.parent) == []


async def test_tiny_timeout_with_real_ffmpeg(tools: Tools, source: Path, tmp_path: Path) -> None:
    """Even a limit that ends ffmpeg before it opened its output leaves nothing behind."""
    output = tmp_path / "clip.mp4"
    with pytest.raises(ClipError, match="timed out"):
        await make_clip(output, source=source, start=0, end=8, ffmpeg=tools.ffmpeg, time_limit=0.01)
    assert entries(tmp_path) == []


async def test_cancellation_cleans_up(tmp_path: Path, frames: list[Path]) -> None:
    """Cancelling the caller kills ffmpeg and removes the part-written file."""
    started = tmp_path / "started"
    ffmpeg = fake_ffmpeg(tmp_path, f'echo partial > "$out"\ntouch "{started}"\nsleep 10')
    output = tmp_path / "clips" / "clip.mp4"
    task = asyncio.create_task(make_clip(output, frames=frames, ffmpeg=ffmpeg))
    for _ in range(300):
        if started.exists():
            break
        await asyncio.sleep(0.01)
    assert leftovers(output.parent) != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert entries(output.parent) == []


async def test_existing_clip_replaced_whole(
    tools: Tools, frames: list[Path], tmp_path: Path
) -> None:
    """A new clip replaces the old one only when finished; a failed one leaves the old in place."""
    output = tmp_path / "clip.mp4"
    output.write_bytes(b"old clip")
    ffmpeg = fake_ffmpeg(tmp_path, 'echo half > "$out"\necho "[mp4 @ 0x1] disk full" >&2\nexit 1')
    with pytest.raises(ClipError, match="ffmpeg could not make the clip: disk full"):
        await make_clip(output, frames=frames, ffmpeg=ffmpeg)
    assert output.read_bytes() == b"old clip"
    await make_clip(output, frames=frames, ffmpeg=tools.ffmpeg)
    assert probe(tools, output).codec == "h264"
    assert leftovers(tmp_path) == []


async def test_file_work_goes_through_run_blocking(
    tools: Tools, frames: list[Path], tmp_path: Path
) -> None:
    """Folder creation, frame sizes, the list of stills and the rename all run through the hook."""
    called: list[str] = []

    async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
        called.append(function.__name__)
        return await asyncio.to_thread(function, *args)

    await make_clip(
        tmp_path / "a" / "clip.mp4", frames=frames, ffmpeg=tools.ffmpeg, run_blocking=run_blocking
    )
    assert called == ["_largest_size", "_make_folder", "_write_listing", "replace", "_unlink"]
    assert entries(tmp_path / "a") == ["clip.mp4"]  # the list of stills is gone


BOX = TimedBox(left=0.1, top=0.1, width=0.2, height=0.2, start=1.0, end=2.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "either frames or source"),
        ({"frames": ["a.jpg"], "source": "a.mp4"}, "either frames or source"),
        ({"frames": []}, "no frames"),
        ({"frames": ["a.jpg"] * 501}, "at most 500"),
        ({"frames": ["a.jpg"], "fps": 0}, "fps must be between"),
        ({"frames": ["a.jpg"], "fps": float("nan")}, "fps must be between"),
        ({"frames": ["a.jpg"], "fps": 120}, "fps must be between"),
        ({"frames": ["a.jpg"], "size": (1, 100)}, "at least 2x2"),
        ({"source": "a.mp4", "start": 5, "end": 4}, "not a time span"),
        ({"source": "a.mp4", "start": -1, "end": 4}, "not a time span"),
        ({"source": "a.mp4", "start": 1, "end": 4, "margin": -1}, "not a time span"),
        ({"source": "a.mp4", "start": float("inf")}, "finite"),
        ({"source": "a.mp4", "time_limit": 0}, "time_limit"),
        ({"frames": ["a.jpg", "b.jpg"], "durations": [1.0]}, "1 durations for 2 frames"),
        ({"frames": ["a.jpg"], "durations": [1.0], "fps": 1}, "either fps or durations"),
        ({"frames": ["a.jpg"], "durations": [0.001]}, "each duration must be between"),
        ({"frames": ["a.jpg"], "durations": [float("nan")]}, "each duration must be between"),
        ({"frames": ["a\nb.jpg"]}, "cannot be listed"),
        ({"source": "a.mp4", "durations": [1.0]}, "for stills"),
        ({"frames": ["a.jpg"], "boxes": [BOX]}, "not on stills"),
        ({"source": "a.mp4", "boxes": [replace(BOX, width=0)]}, "not a box"),
        ({"source": "a.mp4", "boxes": [replace(BOX, end=0.5)]}, "not a box"),
        ({"source": "a.mp4", "boxes": [replace(BOX, left=float("inf"))]}, "finite"),
        ({"source": "a.mp4", "boxes": [replace(BOX, color="red")]}, "#RRGGBB"),
    ],
)
async def test_arguments_checked(tmp_path: Path, arguments: dict[str, Any], message: str) -> None:
    """Arguments that describe no clip are a ValueError, before ffmpeg runs."""
    with pytest.raises(ValueError, match=message):
        await make_clip(tmp_path / "clip.mp4", ffmpeg="/nonexistent/ffmpeg", **arguments)
    assert entries(tmp_path) == []
