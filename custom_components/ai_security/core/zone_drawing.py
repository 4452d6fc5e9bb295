"""A camera's zones drawn on one of its frames, for users checking the polygons they typed.

Each zone is tinted, outlined, its points dotted and its tag written, in its kind's colour. It
is separate from zones.py because picturing zones needs Pillow and the pictures' tools, while
what a zone is and where a detection lies need neither. Blocking: run it in an executor.
"""

from collections.abc import Sequence
from typing import Final

from PIL import Image, ImageDraw

from .box_drawing import FONT_LOCK, draw_tag, scaled_font, scaled_line_width
from .image_codec import decode_image, encode_jpeg, oriented, to_rgb
from .zones import Zone, ZoneKind, describe

_FILL_ALPHA: Final = 72
"""Of 255: the tint shows the zone while the scene under it stays readable."""
_VERTEX_RADIUS: Final = 2
"""Times the line width: a dot on each point, so users see where the points they typed are."""

ZONE_COLORS: Final[dict[ZoneKind, str]] = {
    ZoneKind.ENTRY_POINT: "#E74856",
    ZoneKind.DRIVEWAY: "#3B82F6",
    ZoneKind.SIDEWALK: "#FFB800",
    ZoneKind.YARD: "#76B900",
    ZoneKind.OTHER: "#A855F7",
}
"""Outline and fill colour of each kind of zone in draw_zones: red where people get in."""


SPOT_COLOR: Final = "#FFFFFF"
"""Learned spots are drawn in white, dashed: places, not areas the user drew."""


def draw_zones(
    image: bytes,
    zones: Sequence[Zone],
    *,
    quality: int = 85,
    spots: Sequence[tuple[str, tuple[float, float, float, float]]] = (),
) -> bytes:
    """Return the frame as JPEG with each zone tinted, outlined, its points dotted and named.

    For users checking the polygons they typed. spots are the camera's learned spots (class,
    box in fractions of the frame), drawn as dashed white boxes named "learned: <class>": the
    places where a detection is taken for a known false alarm. Blocking (decode, draw,
    encode): run it in an executor. EXIF orientation is applied first, because zones are
    drawn in the frame as shown, as detections are. Higher-priority zones are drawn last, so
    where zones overlap the tint shows the zone that wins. Raises AnnotateError when the
    image cannot be decoded.
    """
    frame = to_rgb(oriented(decode_image(image)))
    width, height = frame.size
    short_side = min(width, height)
    line_width = scaled_line_width(short_side)
    font = scaled_font(short_side)
    ordered = sorted(zones, key=lambda zone: zone.priority)
    shapes = [
        ([(x * width, y * height) for x, y in zone.points], ZONE_COLORS[zone.kind], zone)
        for zone in ordered
    ]

    # One overlay: where zones overlap, a later zone's tint replaces an earlier one's (no mixing).
    overlay = Image.new("RGBA", frame.size, (0, 0, 0, 0))
    tint = ImageDraw.Draw(overlay)
    for corners, color, _zone in shapes:
        tint.polygon(corners, fill=_rgba(color, _FILL_ALPHA))
    frame = Image.alpha_composite(frame.convert("RGBA"), overlay).convert("RGB")

    draw = ImageDraw.Draw(frame)
    radius = _VERTEX_RADIUS * line_width
    for corners, color, _zone in shapes:
        draw.line([*corners, corners[0]], fill=color, width=line_width, joint="curve")
        for cx, cy in corners:
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
    boxes = [
        (
            round(x * width),
            round(y * height),
            round((x + w) * width) - 1,
            round((y + h) * height) - 1,
            label,
        )
        for label, (x, y, w, h) in spots
    ]
    for left, top, right, bottom, _label in boxes:
        _dashed_box(draw, (left, top, right, bottom), line_width)
    with FONT_LOCK:
        for left, top, right, bottom, label in boxes:
            draw_tag(
                draw,
                (left, top, right, bottom),
                frame_width=width,
                color=SPOT_COLOR,
                text=f"learned: {label}",
                font=font,
            )
        for corners, color, zone in shapes:
            # Tag above the topmost point, so it hides as little of the zone as possible.
            top_x, top_y = min(corners, key=lambda corner: (corner[1], corner[0]))
            left = min(width - 1, max(0, round(top_x)))
            top = min(height - 1, max(0, round(top_y)))
            draw_tag(
                draw,
                (left, top, left, top),
                frame_width=width,
                color=color,
                text=describe(zone),
                font=font,
            )
    return encode_jpeg(frame, quality)


def _dashed_box(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], line_width: int) -> None:
    """Draw a dashed rectangle (dashes of four line widths, as long gaps)."""
    left, top, right, bottom = box
    dash = 4 * line_width
    for start in range(left, right, 2 * dash):
        end = min(start + dash, right)
        draw.line([(start, top), (end, top)], fill=SPOT_COLOR, width=line_width)
        draw.line([(start, bottom), (end, bottom)], fill=SPOT_COLOR, width=line_width)
    for start in range(top, bottom, 2 * dash):
        end = min(start + dash, bottom)
        draw.line([(left, start), (left, end)], fill=SPOT_COLOR, width=line_width)
        draw.line([(right, start), (right, end)], fill=SPOT_COLOR, width=line_width)


def _rgba(color: str, alpha: int) -> tuple[int, int, int, int]:
    """Return "#RRGGBB" with an alpha, as Pillow's RGBA fill."""
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), alpha)
