"""Detections drawn on a frame: a box in its class's colour and a "label 95%" tag for each.

The colours are one per kind of threat, the same in every view (the card, the clips' boxes); line
width and text size grow with the frame so a tag reads the same on a thumbnail and on 4K. It is
separate from annotate.py, which decodes, scales and encodes the pictures, because the zones'
pictures draw their tags the same way on a picture of their own. Blocking and CPU-bound: run it
in an executor.
"""

from collections.abc import Sequence
import functools
import math
import threading
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from .models import Detection

CLASS_COLORS: Final[dict[str, str]] = {
    "person": "#E74856",
    "car": "#3B82F6",
    "truck": "#3B82F6",
    "dog": "#76B900",
    "cat": "#76B900",
    "bicycle": "#FFB800",
    "motorcycle": "#FFB800",
    "bird": "#A855F7",
}
"""Box colour of each object class; one colour per kind of threat, the same in every view."""
DEFAULT_COLOR: Final = "#FFFFFF"

_REFERENCE_SIDE: Final = 1080
"""Line width and font size are given for a frame whose shorter side has this many pixels."""
_LINE_WIDTH: Final = 3
_FONT_SIZE: Final = 22
_MIN_FONT_SIZE: Final = 10
_MAX_LABEL: Final = 40
_FONT_NAMES: Final = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Regular.ttf")

type Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

FONT_LOCK: Final = threading.Lock()
"""FreeType faces are not safe to use from two executor threads at once; text is tiny, so a lock."""


def color_for(label: str) -> str:
    """Return the box colour ("#RRGGBB") of an object class; white for classes without one."""
    return CLASS_COLORS.get(label.strip().lower(), DEFAULT_COLOR)


def scaled_line_width(short_side: int) -> int:
    """Return the box line width for a frame whose shorter side is short_side pixels."""
    return max(1, round(_LINE_WIDTH * short_side / _REFERENCE_SIDE))


def scaled_font(short_side: int) -> Font:
    """Return the tags' font for a frame whose shorter side is short_side pixels."""
    return _font(max(_MIN_FONT_SIZE, round(_FONT_SIZE * short_side / _REFERENCE_SIDE)))


def draw_detections(frame: Image.Image, detections: Sequence[Detection]) -> None:
    """Draw every box first and every tag after, so no box line runs across another's tag."""
    short_side = min(frame.width, frame.height)
    line_width = scaled_line_width(short_side)
    font = scaled_font(short_side)
    draw = ImageDraw.Draw(frame)
    boxes = []
    # Most confident last, so its box and tag end up on top where boxes overlap.
    for detection in sorted(detections, key=lambda d: _confidence(d.confidence) or 0.0):
        box = _clip(detection, frame.width, frame.height)
        if box is None:
            continue
        color = color_for(detection.label)
        draw.rectangle(box, outline=color, width=line_width)
        boxes.append((box, color, _label_text(detection)))
    with FONT_LOCK:
        for box, color, text in boxes:
            draw_tag(draw, box, frame_width=frame.width, color=color, text=text, font=font)


def _clip(detection: Detection, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Return the box as inclusive pixel corners inside the frame, or None when nothing is left."""
    box = detection.bbox
    if not all(math.isfinite(value) for value in (box.x, box.y, box.w, box.h)):
        return None
    left, top = max(0, round(box.x)), max(0, round(box.y))
    right, bottom = min(width, round(box.x + box.w)), min(height, round(box.y + box.h))
    if right - left < 1 or bottom - top < 1:
        return None
    return left, top, right - 1, bottom - 1


def _confidence(value: float) -> float | None:
    """Return the confidence clamped to 0..1, or None when it is not a number."""
    return min(1.0, max(0.0, value)) if math.isfinite(value) else None


def _label_text(detection: Detection) -> str:
    """Return "person 95%": the label printable and on one line, cut when very long."""
    label = " ".join("".join(ch if ch.isprintable() else " " for ch in detection.label).split())
    if len(label) > _MAX_LABEL:
        label = label[: _MAX_LABEL - 3] + "..."
    label = label or "object"
    confidence = _confidence(detection.confidence)
    return label if confidence is None else f"{label} {round(confidence * 100)}%"


def draw_tag(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    *,
    frame_width: int,
    color: str,
    text: str,
    font: Font,
) -> None:
    """Draw text on a filled tag above the box, or inside its top when there is no room above."""
    left, top, _right, _bottom = box
    ink_left, ink_top, ink_right, ink_bottom = font.getbbox(text)
    padding = max(2, round((ink_bottom - ink_top) / 4))
    tag_width = round(ink_right - ink_left) + 2 * padding
    tag_height = round(ink_bottom - ink_top) + 2 * padding
    tag_top = top - tag_height if top >= tag_height else top
    tag_left = left if left + tag_width <= frame_width else max(0, frame_width - tag_width)
    draw.rectangle(
        (tag_left, tag_top, tag_left + tag_width - 1, tag_top + tag_height - 1), fill=color
    )
    draw.text(
        (tag_left + padding - ink_left, tag_top + padding - ink_top),
        text,
        fill=_text_color(color),
        font=font,
    )


def _text_color(color: str) -> str:
    """Return black or white, whichever contrasts more with the colour (WCAG 2 luminance)."""

    def linear(channel: str) -> float:
        value = int(channel, 16) / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(color[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # Contrast with black is (L + 0.05) / 0.05, with white 1.05 / (L + 0.05); equal at L ~ 0.179.
    return "#000000" if (luminance + 0.05) ** 2 > 0.05 * 1.05 else "#FFFFFF"


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Font:
    """Return a TrueType font of size pixels, or Pillow's built-in one when none is installed.

    Cached: loading a face reads the font file, which is worth doing once per size, not per frame.
    """
    for name in _FONT_NAMES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)
