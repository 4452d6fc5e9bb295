"""Short H.264 MP4 clips of an event, from its still frames or cut from the camera's own video.

This module checks which kind of clip is asked for, runs ffmpeg and lands the file: what ffmpeg
is given is clip_stills' (a list of stills, each with its time on screen) or clip_cut's (a span
of the video, boxes drawn over their moments). ffmpeg runs as a child process on the event loop
through video.py's runner (own process group, time limit, killed and reaped on a time-out or a
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
import math
import os
from pathlib import Path
import secrets
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from .clip_cut import CLIP_MARGIN, TimedBox, checked_boxes, cut_args, cut_span
from .clip_stills import Stills, plan_stills
from .media import upright_size
from .video import VideoError, _input_arg, _last_line, _run

__all__ = ["CLIP_MARGIN", "CLIP_TIMEOUT", "ClipError", "TimedBox", "make_clip"]
"""TimedBox is clip_cut's; named here too because callers describe their boxes to make_clip."""

CLIP_TIMEOUT: Final = 60.0
"""Seconds ffmpeg may take to make one clip before it is considered stuck and killed."""

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
    stills: Stills | None = None
    if frames is not None and source is None:
        if boxes:
            raise ValueError("boxes are drawn on a cut video, not on stills")
        stills = await plan_stills(
            list(frames), fps, durations, size, lambda paths: run(_largest_size, paths)
        )
        args: list[str] = []
    elif source is not None and frames is None:
        if fps is not None or durations is not None:
            raise ValueError("fps and durations are for stills, not for a cut video")
        args = cut_args(source, *cut_span(start, end, margin), checked_boxes(boxes))
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
