"""Reading a detection server's reply: which items are objects in the image, and which are garbage.

The server may be anyone's, so nothing of its reply is trusted: each item is checked on its own (a
bad one is dropped with its reason, never a crash), boxes are clipped to the image so annotation
and zones can trust them, and a reply whose boxes follow another convention (fractions, corners) is
recognised whole. It is separate from the client because this is pure data checking, with no
network, endpoints or breakers, and is tested item by item without a server.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
import json
import math
from typing import Final

from .labels import normalize_label
from .models import BoundingBox

_DETAIL_CHARS: Final = 200
"""How much of a server's error detail goes into an error message."""

_NOT_AN_OBJECT: Final = "not a JSON object"
_BAD_CLASS: Final = "no class name"
_BAD_CONFIDENCE: Final = "confidence not a number in [0, 1]"
_BAD_BBOX: Final = "bbox not 4 finite numbers with positive width and height"
_OUTSIDE: Final = "box outside the image"


@dataclass(frozen=True, kw_only=True, slots=True)
class Found:
    """One object of a reply that passed validation and the threshold, its box inside the image."""

    label: str
    """Class name, normalised by labels.normalize_label ("person", "car")."""
    confidence: float
    bbox: BoundingBox


def finite_number(value: object) -> float | None:
    """Return value as a float when it is a finite JSON number (bool is not a number), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _box_values(box: object) -> tuple[float, float, float, float] | None:
    """Return a reply's [x, y, w, h] as four finite floats, or None when it is not that."""
    if not isinstance(box, list) or len(box) != 4:
        return None
    x, y, w, h = (finite_number(value) for value in box)
    if x is None or y is None or w is None or h is None:
        return None
    return x, y, w, h


def _parse_box(box: object, width: int, height: int) -> BoundingBox | str:
    """Return the protocol's [x, y, w, h] clipped to the image, or why it is unusable."""
    values = _box_values(box)
    if values is None:
        return _BAD_BBOX
    x, y, w, h = values
    if w <= 0 or h <= 0:
        return _BAD_BBOX
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, float(width)), min(y + h, float(height))
    if right <= left or bottom <= top:
        return _OUTSIDE
    return BoundingBox(x=left, y=top, w=right - left, h=bottom - top)


UNIT_BOXES: Final = (
    "every box lies inside the unit square: the server seems to answer in 0-1 fractions of "
    "the image, not in pixels"
)
FAR_OUTSIDE: Final = (
    "boxes reach far outside the image: the server seems to answer [x1, y1, x2, y2] corners, "
    "or for another image size, instead of [x, y, width, height] in pixels of the image sent"
)
_MIN_SIDE_FOR_UNIT_CHECK: Final = 64
"""Images at least this wide and high cannot hold real boxes that all fit in one pixel."""
_OUTSIDE_SLACK: Final = 0.1
"""A box may overhang the image by this share of its size (plus a few pixels) before it is
implausible: models predict boxes a little past the edge, and servers do not always clip."""


def implausible_reply(items: Sequence[object], width: int, height: int) -> str | None:
    """Return why a reply's boxes make no sense for a width x height image, or None.

    Two conventions other than the protocol's are recognised: fractions of the image (every box
    in the unit square of a large image, which would be stored as sub-pixel boxes at the
    top-left corner), and boxes far past the image's edges (half of them or more: corners taken
    for sizes, or boxes for another image size). Such a reply is dropped whole: its boxes are in
    the wrong places.
    """
    boxes = [
        values
        for item in items
        if isinstance(item, dict) and (values := _box_values(item.get("bbox"))) is not None
    ]
    if not boxes:
        return None
    if (
        width >= _MIN_SIDE_FOR_UNIT_CHECK
        and height >= _MIN_SIDE_FOR_UNIT_CHECK
        and all(0.0 <= value <= 1.0 for values in boxes for value in values)
    ):
        return UNIT_BOXES
    slack_x, slack_y = width * _OUTSIDE_SLACK + 4, height * _OUTSIDE_SLACK + 4
    far = sum(
        1
        for x, y, w, h in boxes
        if x < -slack_x or y < -slack_y or x + w > width + slack_x or y + h > height + slack_y
    )
    # One stray item among good ones is that item's fault (it is dropped on its own); when
    # half the boxes or more overshoot, the reply follows another convention.
    return FAR_OUTSIDE if far and 2 * far >= len(boxes) else None


def _parse_item(item: object, width: int, height: int) -> Found | str:
    """Return the item as a Found with its box clipped to the image, or why it is unusable."""
    if not isinstance(item, dict):
        return _NOT_AN_OBJECT
    raw_label = item.get("class")
    label = normalize_label(raw_label) if isinstance(raw_label, str) else None
    if label is None:
        return _BAD_CLASS
    confidence = finite_number(item.get("confidence"))
    if confidence is None or not 0.0 <= confidence <= 1.0:
        return _BAD_CONFIDENCE
    box = _parse_box(item.get("bbox"), width, height)
    if isinstance(box, str):
        return box
    return Found(label=label, confidence=confidence, bbox=box)


def validate_items(
    items: Sequence[object], width: int, height: int
) -> tuple[list[Found], Counter[str]]:
    """Return a reply's usable items, and how many of the others were dropped for each reason.

    The reasons are counted, not logged, so that the caller says it once per reply, naming the
    endpoint that sent them.
    """
    found: list[Found] = []
    reasons: Counter[str] = Counter()
    for item in items:
        parsed = _parse_item(item, width, height)
        if isinstance(parsed, str):
            reasons[parsed] += 1
        else:
            found.append(parsed)
    return found, reasons


def error_detail(body: bytes) -> str:
    """Return the "detail" or "error" text of a JSON error body (FastAPI's style), else ""."""
    try:
        payload = json.loads(body)
    except ValueError, RecursionError:
        return ""
    if not isinstance(payload, dict):
        return ""
    for key in ("detail", "error", "message"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:_DETAIL_CHARS]
    return ""
