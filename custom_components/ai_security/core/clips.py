"""Short H.264 MP4 clips of an event, from its still frames or cut from the camera's own video.

ffmpeg runs as a child process on the event loop through video.py's runner (own process group,
time limit, killed and reaped on a time-out or a cancellation). The clip is written under a
hidden temporary name in the target folder and renamed into place only once ffmpeg has finished,
so a half-written clip is never served; on any failure the temporary file is removed. The few
file operations (creating the folder, reading frame sizes, the rename) run through the caller's
run_blocking hook, never on the loop. The MP4 is what every browser plays: H.264, yuv420p, even
dimensions, index at the front (+faststart) so playback starts before the download ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from fractions import Fraction
import math
import os
from pathlib import Path
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
"""Each still is one ffmpeg input (an open file and a decoder); more than this is a mistake."""

_OUTPUT_RATE: Final = 5
"""Least frames per second of a clip of stills: seekable in a player, still tiny (frames repeat)."""
_TV_RANGE: Final = "out_range=tv"
"""JPEG stills and MJPEG cameras are full range (ffprobe: yuvj420p); players expect limited."""
_X264: Final = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")

type BlockingRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking callable off the loop: Home Assistant's async_add_executor_job or to_thread."""


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
    size: tuple[int, int] | None = None,
    source: str | Path | None = None,
    start: float = 0.0,
    end: float | None = None,
    margin: float = CLIP_MARGIN,
    ffmpeg: str = "ffmpeg",
    time_limit: float = CLIP_TIMEOUT,
    run_blocking: BlockingRunner | None = None,
) -> Path:
    """Write an MP4 clip to output and return its path; give either frames or source.

    frames: still images (JPEG paths) shown one after the other, each for 1 / fps seconds
    (1 s when fps is None), scaled and padded with black to one even size (size, or else the
    largest frame's width and height, at most MAX_CLIP_SIDE).
    source: a video cut from margin seconds before start to margin seconds after end (seconds
    into the video), re-encoded so the cut is frame-exact and plays everywhere.
    run_blocking runs the file operations (default asyncio.to_thread). Raises ClipError when
    ffmpeg is missing, overruns time_limit, cannot read the input or produces no frames; raises
    ValueError for arguments that do not describe a clip.
    """
    run = run_blocking or asyncio.to_thread
    if not math.isfinite(time_limit) or time_limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit}")
    if frames is not None and source is None:
        args = await _stills_args(list(frames), fps, size, run)
    elif source is not None and frames is None:
        args = _cut_args(source, *_span(start, end, margin))
    else:
        raise ValueError("give either frames or source, not both or neither")
    target = Path(output)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        await run(_make_folder, target.parent)
    except OSError as err:
        raise ClipError(f"cannot create the clip's folder: {err}") from err
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
    return target


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


async def _stills_args(
    frames: list[str | Path],
    fps: float | None,
    size: tuple[int, int] | None,
    run: BlockingRunner,
) -> list[str]:
    """Return ffmpeg's inputs and filter for a clip of stills, arguments checked."""
    rate = _frame_rate(fps)
    if not frames:
        raise ValueError("no frames to make a clip of")
    if len(frames) > MAX_FRAMES:
        raise ValueError(f"{len(frames)} frames, at most {MAX_FRAMES} make a clip")
    if size is None:
        size = await run(_largest_size, frames)
    return _frames_args(frames, rate, _even_size(size))


def _frame_rate(fps: float | None) -> float:
    """Return how many stills a second to show, checked."""
    rate = 1 / FRAME_SECONDS if fps is None else fps
    if not MIN_FPS <= rate <= MAX_FPS:  # also refuses NaN
        raise ValueError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, not {fps}")
    return rate


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


def _frames_args(frames: list[str | Path], rate: float, size: tuple[int, int]) -> list[str]:
    """Return ffmpeg's inputs and filter: each still looped for its time, fitted, concatenated."""
    width, height = size
    # Each still becomes a whole number of frames, so its time on screen is exact.
    repeat = math.ceil(_OUTPUT_RATE / rate)
    output_rate = Fraction(rate).limit_denominator(1001) * repeat
    # Half a frame more than needed: trim then cuts exactly, whatever the rounding.
    seconds = f"{(repeat + 0.5) / output_rate:.6f}"
    args: list[str] = []
    filters: list[str] = []
    for index, frame in enumerate(frames):
        args += ["-loop", "1", "-framerate", str(output_rate), "-t", seconds]
        args += ["-i", _input_arg(frame)]
        filters.append(
            f"[{index}:v]scale={width}:{height}:force_original_aspect_ratio=decrease:{_TV_RANGE},"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:black,setsar=1,format=yuv420p,"
            f"trim=end_frame={repeat}[v{index}]"
        )
    joined = "".join(f"[v{index}]" for index in range(len(frames)))
    filters.append(f"{joined}concat=n={len(frames)}:v=1:a=0[clip]")
    return [*args, "-filter_complex", ";".join(filters), "-map", "[clip]", "-r", str(output_rate)]


def _cut_args(source: str | Path, begin: float, duration: float) -> list[str]:
    """Return ffmpeg's input and options that cut duration seconds from begin, video only.

    -ss before -i seeks fast to the key frame before begin and then decodes exactly to it; the
    camera's audio is dropped: odd codecs (G.711, ADPCM) would fail the clip for little gain.
    An odd last row or column is cropped (yuv420p needs even sides) and full-range video, as
    MJPEG cameras send it, is converted to the limited range every player expects.
    """
    return [
        *("-ss", f"{begin:.3f}", "-i", _input_arg(source)),
        *("-t", f"{duration:.3f}", "-map", "0:V:0", "-an", "-sn", "-dn"),
        *("-vf", f"crop=trunc(iw/2)*2:trunc(ih/2)*2,scale={_TV_RANGE},format=yuv420p"),
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


def _unlink(path: Path) -> None:
    """Remove a file that may not exist (ffmpeg killed before it opened its output)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _remove(run: BlockingRunner, path: Path) -> None:
    """Remove the temporary file, finishing even when the caller is being cancelled."""
    await asyncio.shield(run(_unlink, path))
