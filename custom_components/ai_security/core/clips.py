"""Short H.264 MP4 clips of an event, from its still frames or cut from the camera's own video.

Stills reach ffmpeg as one list (its concat demuxer), each with its own time on screen, so ffmpeg
decodes one still at a time however many there are; a cut video can have boxes drawn on it, each
over its own moments (TimedBox). ffmpeg runs as a child process on the event loop through
video.py's runner (own process group, time limit, killed and reaped on a time-out or a
cancellation). The clip is written under a hidden temporary name in the target folder and renamed
into place only once ffmpeg has finished, so a half-written clip is never served; on any failure
the temporary files are removed. The few file operations (creating the folder, reading frame
sizes, writing the list of stills, the rename) run through the caller's run_blocking hook, never
on the loop. The MP4 is what every browser plays: H.264, yuv420p, even dimensions, index at the
front (+faststart) so playback starts before the download ends.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from dataclasses import dataclass
from fractions import Fraction
import math
import os
from pathlib import Path
import re
import secrets
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from .media import upright_size
from .video import VideoError, _input_arg, _last_line, _run

CLIP_TIMEOUT: Final = 60.0
"""Seconds ffmpeg may take to make one clip before it is considered stuck and killed."""
CLIP_MARGIN: Final = 2.0
"""Seconds kept before and after the event when cutting from a video: the approach and the exit."""
FRAME_SECONDS: Final = 1.0
"""How long each still frame is shown when no rate is given."""
MIN_FPS: Final = 1 / 60
"""A still shown for more than a minute is no longer a clip."""
MAX_FPS: Final = 60.0
MAX_CLIP_SIDE: Final = 1920
"""A clip of stills is scaled to fit this, so a 4K frame among them does not make a 4K clip."""
MAX_FRAMES: Final = 500
"""Stills in one clip: each is listed for ffmpeg and its header read first; more is a mistake."""

_OUTPUT_RATE: Final = 5
"""Least frames per second of a clip of stills: seekable in a player, still tiny (frames repeat)."""
_TV_RANGE: Final = "out_range=tv"
"""JPEG stills and MJPEG cameras are full range (ffprobe: yuvj420p); players expect limited."""
_X264: Final = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
_BOX_LINE: Final = "max(2,round(min(iw,ih)*3/1080))"
"""A drawn box's line width: annotate.py's 3 px on a 1080-line frame, at least 2 (one pixel is
lost to H.264's halved colour resolution)."""
_BOX_SLACK: Final = 0.02
"""Seconds a box appears before its time: the frame ffmpeg decodes for a time may be stamped a
hair earlier than asked."""
_COLOR: Final = re.compile(r"#[0-9A-Fa-f]{6}")
_ONE_MS: Final = "option framerate 1000"

type BlockingRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking callable off the loop: Home Assistant's async_add_executor_job or to_thread."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TimedBox:
    """A box drawn on a cut video while start <= t < end, in seconds into the source video.

    left, top, width and height are fractions (0 to 1) of the frame as shown, after the rotation
    ffmpeg applies: the frame the detector saw (see video.py). Being fractions, they need no
    picture size: ffmpeg scales them to the video it decodes.
    """

    left: float
    top: float
    width: float
    height: float
    start: float
    end: float
    color: str = "#FFFFFF"
    """"#RRGGBB", as annotate.color_for gives it."""


class ClipError(Exception):
    """A clip could not be made; reason says why in words a user understands."""

    def __init__(self, reason: str) -> None:
        """Keep reason, which is also the exception's text."""
        super().__init__(reason)
        self.reason = reason


async def make_clip(
    output: str | Path,
    *,
    frames: Sequence[str | Path] | None = None,
    fps: float | None = None,
    durations: Sequence[float] | None = None,
    size: tuple[int, int] | None = None,
    source: str | Path | None = None,
    start: float = 0.0,
    end: float | None = None,
    margin: float = CLIP_MARGIN,
    boxes: Sequence[TimedBox] = (),
    ffmpeg: str = "ffmpeg",
    time_limit: float = CLIP_TIMEOUT,
    run_blocking: BlockingRunner | None = None,
) -> Path:
    """Write an MP4 clip to output and return its path; give either frames or source.

    frames: still images (JPEG paths) shown one after the other, each for 1 / fps seconds
    (1 s when fps is None) or each for its own seconds in durations (one for each frame,
    rounded to whole frames of at least 5 a second), scaled and padded with black to one even
    size (size, or else the largest frame's width and height, at most MAX_CLIP_SIDE).
    source: a video cut from margin seconds before start to margin seconds after end (seconds
    into the video), re-encoded so the cut is frame-exact and plays everywhere, with boxes
    drawn on it, each over its own span of the source's time.
    run_blocking runs the file operations (default asyncio.to_thread). Raises ClipError when
    ffmpeg is missing, overruns time_limit, cannot read the input or produces no frames; raises
    ValueError for arguments that do not describe a clip.
    """
    run = run_blocking or asyncio.to_thread
    if not math.isfinite(time_limit) or time_limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit}")
    stills: _Stills | None = None
    if frames is not None and source is None:
        if boxes:
            raise ValueError("boxes are drawn on a cut video, not on stills")
        stills = await _stills(list(frames), fps, durations, size, run)
        args: list[str] = []
    elif source is not None and frames is None:
        if fps is not None or durations is not None:
            raise ValueError("fps and durations are for stills, not for a cut video")
        args = _cut_args(source, *_span(start, end, margin), _checked_boxes(boxes))
    else:
        raise ValueError("give either frames or source, not both or neither")
    target = Path(output)
    token = secrets.token_hex(6)
    temporary = target.with_name(f".{target.name}.{token}.part")
    listing = target.with_name(f".{target.name}.{token}.txt")
    try:
        try:
            await run(_make_folder, target.parent)
        except OSError as err:
            raise ClipError(f"cannot create the clip's folder: {err}") from err
        if stills is not None:
            try:
                await run(_write_listing, listing, stills.listing)
            except OSError as err:
                raise ClipError(f"cannot list the stills for ffmpeg: {err}") from err
            args = stills.args(listing)
        await _make(ffmpeg, args, temporary, target, time_limit=time_limit, run=run)
    finally:
        if stills is not None:  # written or not, cancelled or not: never left behind
            await _remove(run, listing)
    return target


async def _make(
    ffmpeg: str,
    args: list[str],
    temporary: Path,
    target: Path,
    *,
    time_limit: float,
    run: BlockingRunner,
) -> None:
    """Encode to temporary and rename it to target; remove temporary on any failure."""
    try:
        await _encode(ffmpeg, args, temporary, time_limit)
        await run(os.replace, temporary, target)
    except VideoError as err:  # ffmpeg missing or timed out: video.py's runner says which
        await _remove(run, temporary)
        raise ClipError(err.reason) from err
    except OSError as err:  # the rename: the folder vanished or is not writable
        await _remove(run, temporary)
        raise ClipError(f"cannot store the clip: {err}") from err
    except BaseException:  # failed or cancelled: never leave a part-written clip behind
        await _remove(run, temporary)
        raise


async def _encode(ffmpeg: str, args: list[str], temporary: Path, time_limit: float) -> None:
    """Run ffmpeg with the input args, writing an H.264 MP4 to temporary; raise if it failed."""
    returncode, stdout, stderr = await _run(
        "ffmpeg",
        ffmpeg,
        [
            *("-nostdin", "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1"),
            *args,
            *_X264,
            *("-movflags", "+faststart", "-f", "mp4", "-y", _input_arg(temporary)),
        ],
        time_limit,
    )
    if returncode != 0:
        raise _failure(stderr)
    if _frames_written(stdout) == 0:
        raise ClipError(f"no frames in the requested part of the video: {_last_line(stderr)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Stills:
    """A clip of stills, checked: ffmpeg's list of them and how to encode it."""

    listing: str
    """The concat demuxer's list: each still and its time on screen."""
    rate: Fraction
    """Frames a second of the clip; every still is a whole number of them."""
    frames: int
    """Frames in the clip."""
    size: tuple[int, int]

    def args(self, listing: Path) -> list[str]:
        """Return ffmpeg's input and filter, reading the list written to listing."""
        width, height = self.size
        # ffmpeg's constant-rate output repeats a frame until 0.6 of a frame before the next
        # one's time: every still starting half a frame late makes each change on its own frame.
        late = 1 / (2 * self.rate)
        return [
            # The list names absolute paths (-safe 0) and only plain files may be opened.
            *("-f", "concat", "-safe", "0", "-protocol_whitelist", "file"),
            *("-itsoffset", f"{float(late):.6f}"),
            *("-i", _input_arg(listing), "-map", "0:v:0", "-an", "-sn", "-dn"),
            *(
                "-vf",
                f"scale={width}:{height}:force_original_aspect_ratio=decrease:{_TV_RANGE},"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:black,setsar=1,format=yuv420p",
            ),
            *("-fps_mode", "cfr", "-r", str(self.rate), "-frames:v", str(self.frames)),
        ]


async def _stills(
    frames: list[str | Path],
    fps: float | None,
    durations: Sequence[float] | None,
    size: tuple[int, int] | None,
    run: BlockingRunner,
) -> _Stills:
    """Return the clip of stills the arguments describe, checked."""
    if not frames:
        raise ValueError("no frames to make a clip of")
    if len(frames) > MAX_FRAMES:
        raise ValueError(f"{len(frames)} frames, at most {MAX_FRAMES} make a clip")
    if durations is None:
        rate = _frame_rate(fps)
        # Each still becomes a whole number of frames, so its time on screen is exact.
        repeat = math.ceil(_OUTPUT_RATE / rate)
        output_rate = Fraction(rate).limit_denominator(1001) * repeat
        counts = [repeat] * len(frames)
    elif fps is not None:
        raise ValueError("give either fps or durations, not both")
    else:
        output_rate, counts = _counts(list(durations), len(frames))
    if size is not None:
        size = _even_size(size)
    paths = [_listed(frame) for frame in frames]
    if size is None:
        size = _even_size(await run(_largest_size, frames))
    return _Stills(
        listing=_listing(paths, counts, output_rate),
        rate=output_rate,
        frames=sum(counts),
        size=size,
    )


def _frame_rate(fps: float | None) -> float:
    """Return how many stills a second to show, checked."""
    rate = 1 / FRAME_SECONDS if fps is None else fps
    if not MIN_FPS <= rate <= MAX_FPS:  # also refuses NaN
        raise ValueError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, not {fps}")
    return rate


def _counts(durations: list[float], stills: int) -> tuple[Fraction, list[int]]:
    """Return the clip's frame rate and each still's frames, for stills shown for durations.

    The rate is 5 frames a second, more when a still is shown for less than a fifth of a
    second (at most MAX_FPS); each still gets the whole number of frames nearest its time
    (halves up), at least one.
    """
    if len(durations) != stills:
        raise ValueError(f"{len(durations)} durations for {stills} frames")
    if not all(1 / MAX_FPS <= seconds <= 1 / MIN_FPS for seconds in durations):  # refuses NaN
        raise ValueError(
            f"each duration must be between {1 / MAX_FPS:g} and {1 / MIN_FPS:g} seconds"
        )
    rate = max(_OUTPUT_RATE, min(math.ceil(1 / min(durations)), int(MAX_FPS)))
    return Fraction(rate), [max(1, int(seconds * rate + 0.5)) for seconds in durations]


def _listed(frame: str | Path) -> str:
    """Return the still's absolute path, quoted for the concat demuxer's list."""
    path = os.path.abspath(frame)
    if "\n" in path or "\r" in path or "\x00" in path:
        raise ValueError(f"a frame's name cannot be listed for ffmpeg: {path!r}")
    # The list's quoting is the shell's: 'it'\''s' is "it's".
    return "'" + _input_arg(path).replace("'", "'\\''") + "'"


def _listing(paths: list[str], counts: list[int], rate: Fraction) -> str:
    """Return the concat demuxer's list: each still with its time on screen.

    The last still is listed once more: the demuxer gives the last entry no length, so the
    repeat is what makes the last still last; -frames:v ends the clip at the exact count. Each
    still is read as a frame lasting a millisecond (its "framerate"), not the image reader's
    default 1/25 s, which would add up to a frame more to a still at high rates.
    """
    lines = ["ffconcat version 1.0"]
    for path, count in zip(paths, counts, strict=True):
        lines += [f"file {path}", _ONE_MS, f"duration {float(count / rate):.6f}"]
    lines += [f"file {paths[-1]}", _ONE_MS]
    return "\n".join(lines) + "\n"


def _span(start: float, end: float | None, margin: float) -> tuple[float, float]:
    """Return where to start in the source and how long to cut, margins added and clamped at 0."""
    end = start if end is None else end
    if not all(math.isfinite(value) for value in (start, end, margin)):
        raise ValueError("start, end and margin must be finite numbers")
    if start < 0 or end < start or margin < 0:
        raise ValueError(f"not a time span: start {start}, end {end}, margin {margin}")
    begin = max(0.0, start - margin)
    return begin, end + margin - begin


def _even_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return size scaled to fit MAX_CLIP_SIDE and rounded down to even sides (yuv420p needs it)."""
    width, height = size
    if width < 2 or height < 2:
        raise ValueError(f"clip size must be at least 2x2, not {size}")
    scale = min(1.0, MAX_CLIP_SIDE / max(width, height))
    width, height = max(2, int(width * scale)), max(2, int(height * scale))
    return width - width % 2, height - height % 2


def _checked_boxes(boxes: Sequence[TimedBox]) -> list[TimedBox]:
    """Return the boxes when each describes a box and a span of time, else raise ValueError."""
    for box in boxes:
        values = (box.left, box.top, box.width, box.height, box.start, box.end)
        if not all(math.isfinite(value) for value in values):
            raise ValueError(f"a box's place and times must be finite numbers: {box}")
        if box.width <= 0 or box.height <= 0 or box.end < box.start:
            raise ValueError(f"not a box over a span of time: {box}")
        if not _COLOR.fullmatch(box.color):
            raise ValueError(f"a box's colour must be #RRGGBB, not {box.color!r}")
    return list(boxes)


def _drawbox(box: TimedBox, begin: float) -> str:
    """Return ffmpeg's drawbox filter for a box, shown over its span of the cut's time.

    The cut starts at begin in the source, and its timestamps start at 0 there.
    """
    first, last = box.start - begin - _BOX_SLACK, box.end - begin
    return (
        f"drawbox=x=iw*{box.left:.6f}:y=ih*{box.top:.6f}"
        f":w=iw*{box.width:.6f}:h=ih*{box.height:.6f}"
        f":color=0x{box.color[1:]}:t='{_BOX_LINE}'"
        f":enable='gte(t,{first:.3f})*lt(t,{last:.3f})'"
    )


def _cut_args(
    source: str | Path, begin: float, duration: float, boxes: Sequence[TimedBox] = ()
) -> list[str]:
    """Return ffmpeg's input and options that cut duration seconds from begin, video only.

    -ss before -i seeks fast to the key frame before begin and then decodes exactly to it; the
    camera's audio is dropped: odd codecs (G.711, ADPCM) would fail the clip for little gain.
    Boxes are drawn on the upright frame (ffmpeg turns it by the stream's rotation first). An
    odd last row or column is cropped (yuv420p needs even sides) and full-range video, as MJPEG
    cameras send it, is converted to the limited range every player expects.
    """
    drawn = [_drawbox(box, begin) for box in boxes]
    chain = [*drawn, "crop=trunc(iw/2)*2:trunc(ih/2)*2", f"scale={_TV_RANGE}", "format=yuv420p"]
    return [
        *("-ss", f"{begin:.3f}", "-i", _input_arg(source)),
        *("-t", f"{duration:.3f}", "-map", "0:V:0", "-an", "-sn", "-dn"),
        *("-vf", ",".join(chain)),
    ]


def _failure(stderr: bytes) -> ClipError:
    """Return the error for an input ffmpeg could not read or a clip it could not write."""
    if b"matches no streams" in stderr:
        return ClipError("the source has no video stream")
    line = _last_line(stderr)
    if line.endswith("No such file or directory"):
        return ClipError(f"an input does not exist: {line}")
    return ClipError(f"ffmpeg could not make the clip: {line}")


def _frames_written(progress: bytes) -> int | None:
    """Return the frame count of ffmpeg's last -progress report, None when it printed none.

    ffmpeg exits with status 0 having encoded nothing when the span lies past the video's end.
    """
    count = None
    for line in progress.decode("ascii", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "frame" and value.strip().isdigit():
            count = int(value)
    return count


def _largest_size(frames: list[str | Path]) -> tuple[int, int]:
    """Return the largest width and the largest height among the upright frames (headers only).

    ffmpeg shows a still turned by its EXIF orientation, as the detector and annotate.py do, so
    the clip's size is taken from the same upright frame.
    """
    width = height = 0
    for frame in frames:
        try:
            with Image.open(frame) as image:
                shown = upright_size(image)
                width, height = max(width, shown[0]), max(height, shown[1])
        except FileNotFoundError as err:
            raise ClipError(f"a frame does not exist: {frame}") from err
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
            raise ClipError(f"a frame is not a readable image: {frame}") from err
    return width, height


def _make_folder(folder: Path) -> None:
    """Create the clip's folder (and its parents) if it does not exist yet."""
    folder.mkdir(parents=True, exist_ok=True)


def _write_listing(path: Path, listing: str) -> None:
    """Write ffmpeg's list of stills (a new hidden file beside the clip's temporary file)."""
    with open(path, "x", encoding="utf-8", errors="surrogateescape") as file:
        file.write(listing)


def _unlink(path: Path) -> None:
    """Remove a file that may not exist (ffmpeg killed before it opened its output).

    NotADirectoryError: the folder it would be in is a file, so it cannot exist either.
    """
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


async def _remove(run: BlockingRunner, path: Path) -> None:
    """Remove a temporary file, finishing even when the caller is being cancelled."""
    await asyncio.shield(run(_unlink, path))
