"""A cut of the camera's video planned for ffmpeg: the span with its margins, the boxes drawn on it.

The cut is re-encoded so it is frame-exact and plays everywhere, and each detection's box is
drawn over its own moments of the source's time (TimedBox). It is separate from clips.py, which
runs ffmpeg and lands the file, because this only turns checked arguments into ffmpeg's input
options and filters, with no file or program touched.
"""

from collections.abc import Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import re
from typing import Final

from .clip_stills import TV_RANGE
from .video import _input_arg

CLIP_MARGIN: Final = 2.0
"""Seconds kept before and after the event when cutting from a video: the approach and the exit."""

_BOX_LINE: Final = "max(2,round(min(iw,ih)*3/1080))"
"""A drawn box's line width: annotate.py's 3 px on a 1080-line frame, at least 2 (one pixel is
lost to H.264's halved colour resolution)."""
_BOX_SLACK: Final = 0.02
"""Seconds a box appears before its time: the frame ffmpeg decodes for a time may be stamped a
hair earlier than asked."""
_COLOR: Final = re.compile(r"#[0-9A-Fa-f]{6}")


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


def cut_span(start: float, end: float | None, margin: float) -> tuple[float, float]:
    """Return where to start in the source and how long to cut, margins added and clamped at 0."""
    end = start if end is None else end
    if not all(math.isfinite(value) for value in (start, end, margin)):
        raise ValueError("start, end and margin must be finite numbers")
    if start < 0 or end < start or margin < 0:
        raise ValueError(f"not a time span: start {start}, end {end}, margin {margin}")
    begin = max(0.0, start - margin)
    return begin, end + margin - begin


def checked_boxes(boxes: Sequence[TimedBox]) -> list[TimedBox]:
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


def cut_args(
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
    chain = [*drawn, "crop=trunc(iw/2)*2:trunc(ih/2)*2", f"scale={TV_RANGE}", "format=yuv420p"]
    return [
        *("-ss", f"{begin:.3f}", "-i", _input_arg(source)),
        *("-t", f"{duration:.3f}", "-map", "0:V:0", "-an", "-sn", "-dn"),
        *("-vf", ",".join(chain)),
    ]
