"""A clip of stills planned for ffmpeg: its frame rate, each still's frames, its size, its list.

Stills reach ffmpeg as one list (its concat demuxer), each with its own time on screen, so
ffmpeg decodes one still at a time however many there are, and every still lasts a whole number
of frames of a constant-rate clip. It is separate from clips.py, which runs ffmpeg and lands the
file, because this is pure arithmetic and text over the arguments, checked before any file or
program is touched.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
import math
import os
from pathlib import Path
from typing import Final

from .video import _input_arg

FRAME_SECONDS: Final = 1.0
"""How long each still frame is shown when no rate is given."""
MIN_FPS: Final = 1 / 60
"""A still shown for more than a minute is no longer a clip."""
MAX_FPS: Final = 60.0
MAX_CLIP_SIDE: Final = 1920
"""A clip of stills is scaled to fit this, so a 4K frame among them does not make a 4K clip."""
MAX_FRAMES: Final = 500
"""Stills in one clip: each is listed for ffmpeg and its header read first; more is a mistake."""
TV_RANGE: Final = "out_range=tv"
"""JPEG stills and MJPEG cameras are full range (ffprobe: yuvj420p); players expect limited."""

_OUTPUT_RATE: Final = 5
"""Least frames per second of a clip of stills: seekable in a player, still tiny (frames repeat)."""
_ONE_MS: Final = "option framerate 1000"


@dataclass(frozen=True, kw_only=True, slots=True)
class Stills:
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
                f"scale={width}:{height}:force_original_aspect_ratio=decrease:{TV_RANGE},"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:black,setsar=1,format=yuv420p",
            ),
            *("-fps_mode", "cfr", "-r", str(self.rate), "-frames:v", str(self.frames)),
        ]


async def plan_stills(
    frames: list[str | Path],
    fps: float | None,
    durations: Sequence[float] | None,
    size: tuple[int, int] | None,
    measure: Callable[[list[str | Path]], Awaitable[tuple[int, int]]],
) -> Stills:
    """Return the clip of stills the arguments describe; raise ValueError when they describe none.

    measure gives the largest upright width and height among the frames, asked only when size
    is None and only once every other argument is checked: it reads files, off the loop.
    """
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
        size = _even_size(await measure(frames))
    return Stills(
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


def _even_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return size scaled to fit MAX_CLIP_SIDE and rounded down to even sides (yuv420p needs it)."""
    width, height = size
    if width < 2 or height < 2:
        raise ValueError(f"clip size must be at least 2x2, not {size}")
    scale = min(1.0, MAX_CLIP_SIDE / max(width, height))
    width, height = max(2, int(width * scale)), max(2, int(height * scale))
    return width - width % 2, height - height % 2
