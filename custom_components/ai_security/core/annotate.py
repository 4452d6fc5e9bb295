"""Boxes, labels and thumbnails drawn on a frame, so people see at a glance what the detector saw.

Everything here is synchronous and CPU-bound (decoding, drawing, encoding JPEG): the pipeline runs
it in an executor, never on the event loop. A 1920x1080 frame with its thumbnail takes about 20 ms
on one core (scripts/bench_media measures it). The input comes from cameras, so it is treated as
hostile: only common raster formats are opened, decompression bombs are refused, and a corrupt or
truncated image becomes an AnnotateError rather than a half-grey picture.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
import functools
import io
import logging
import math
import threading
from typing import Final, cast

from PIL import (
    ExifTags,
    Image,
    ImageDraw,
    ImageFile,
    ImageFont,
    ImageOps,
    UnidentifiedImageError,
)

from .models import BoundingBox, Detection

_LOGGER = logging.getLogger(__name__)

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

THUMBNAIL_SIZE: Final = (320, 240)
KEY_FRAME_SIZE: Final = (960, 540)
"""The least size of an incident's key frame: a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale
down to no less than this (a 1080p upload gives 960x540). Decoding and encoding a quarter of the
pixels is what lets the phone's picture exist within tens of milliseconds of the detection; the
full-size annotated frames follow it."""
THUMBNAIL_QUALITY: Final = 85

_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""What cameras upload (JPEG includes MPO). Pillow's other formats are refused: some (EPS) start
external programs, others are rarely used parsers that nothing here needs to expose."""
_JPEG_END: Final = b"\xff\xd9"
_REFERENCE_SIDE: Final = 1080
"""Line width and font size are given for a frame whose shorter side has this many pixels."""
_LINE_WIDTH: Final = 3
_FONT_SIZE: Final = 22
_MIN_FONT_SIZE: Final = 10
_MAX_LABEL: Final = 40
_FONT_NAMES: Final = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Regular.ttf")
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ORIENTATION: Final = ExifTags.Base.Orientation
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})
"""EXIF orientations that rotate by 90 degrees, so width and height trade places."""

type Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_FONT_LOCK: Final = threading.Lock()
"""FreeType faces are not safe to use from two executor threads at once; text is tiny, so a lock."""


class AnnotateError(Exception):
    """The image cannot be annotated; the text says why in words a user understands."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotatedFrame:
    """A frame with its detections drawn on it, full size and as a thumbnail, both JPEG."""

    jpeg: bytes
    thumbnail: bytes
    width: int
    """Of the frame as shown, after its EXIF orientation was applied."""
    height: int


def color_for(label: str) -> str:
    """Return the box colour ("#RRGGBB") of an object class; white for classes without one."""
    return CLASS_COLORS.get(label.strip().lower(), DEFAULT_COLOR)


def annotate(image: bytes, detections: Sequence[Detection], *, quality: int = 90) -> AnnotatedFrame:
    """Draw each detection's box and a "label 95%" tag on the image; return JPEG and thumbnail.

    Blocking (decoding, drawing and encoding take milliseconds): run it in an executor. The
    image's EXIF orientation is applied first, because the detector reports boxes in the frame
    as it is shown. Boxes are clipped to the frame; empty or non-finite ones are skipped. Raises
    AnnotateError when the image is not one, is corrupt or truncated, or has too many pixels.
    """
    frame = _to_rgb(_oriented(_decode(image)))
    _draw(frame, detections)
    return AnnotatedFrame(
        jpeg=_encode(frame, quality),
        thumbnail=thumbnail(frame),
        width=frame.width,
        height=frame.height,
    )


@dataclass(frozen=True, slots=True)
class KeyFrameCanvas:
    """An upload decoded for its key frame (decode_key_frame), ready to be drawn on once."""

    image: Image.Image
    """Upright RGB, at the reduced scale."""
    scale: float
    """Of the decoded picture against the upright full-size frame the boxes are given in."""


def decode_key_frame(image: bytes, *, size: tuple[int, int] = KEY_FRAME_SIZE) -> KeyFrameCanvas:
    """Decode the image at a reduced scale (see KEY_FRAME_SIZE), upright and in RGB.

    Blocking: run it in an executor. This is most of a key frame's cost, and it needs no
    detections: the pipeline starts it while the detector is still looking at the upload of a
    camera with no incident open, so only drawing and encoding are left when the incident opens.
    Raises AnnotateError as annotate() does.
    """
    opened = _open(image)
    full_width = opened.size[0]
    _draft(opened, size, factor=1.0)
    scale = opened.size[0] / full_width
    return KeyFrameCanvas(image=_to_rgb(_oriented(_load(opened, image))), scale=scale)


def draw_key_frame(
    canvas: KeyFrameCanvas, detections: Sequence[Detection], *, quality: int = 90
) -> AnnotatedFrame:
    """Draw the detections on a decoded key frame (drawn on in place) and encode it.

    Blocking: run it in an executor. The boxes, given in the upright full-size frame, are
    scaled with the picture. The returned frame has no thumbnail (b"").
    """
    frame, scale = canvas.image, canvas.scale
    if scale != 1:
        detections = [
            replace(
                d,
                bbox=BoundingBox(
                    x=d.bbox.x * scale, y=d.bbox.y * scale, w=d.bbox.w * scale, h=d.bbox.h * scale
                ),
            )
            for d in detections
        ]
    _draw(frame, detections)
    return AnnotatedFrame(
        jpeg=_encode(frame, quality), thumbnail=b"", width=frame.width, height=frame.height
    )


def annotate_key_frame(
    image: bytes,
    detections: Sequence[Detection],
    *,
    size: tuple[int, int] = KEY_FRAME_SIZE,
    quality: int = 90,
) -> AnnotatedFrame:
    """Draw the detections on the image decoded at a reduced scale (see KEY_FRAME_SIZE).

    Blocking: run it in an executor. decode_key_frame, then draw_key_frame. Raises
    AnnotateError as annotate() does.
    """
    return draw_key_frame(decode_key_frame(image, size=size), detections, quality=quality)


def thumbnail(
    image: bytes | Image.Image,
    size: tuple[int, int] = THUMBNAIL_SIZE,
    quality: int = THUMBNAIL_QUALITY,
) -> bytes:
    """Return a JPEG of exactly size: the image scaled to fit, aspect kept, black bars around.

    Blocking: run it in an executor. Every thumbnail has the same size so a grid of events lines
    up. Bytes are decoded at a reduced scale where JPEG allows (much faster than the full
    frame) and turned upright by their EXIF orientation; a PIL image is taken as already upright
    and is not modified. Raises AnnotateError for bytes that cannot be decoded.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"thumbnail size must be positive, not {size}")
    if isinstance(image, Image.Image):
        source = _to_rgb(image)
    else:
        opened = _open(image)
        _draft(opened, size)
        source = _to_rgb(_oriented(_load(opened, image)))
    scale = min(width / source.width, height / source.height)
    fitted = (
        min(width, max(1, round(source.width * scale))),
        min(height, max(1, round(source.height * scale))),
    )
    scaled = source.resize(fitted, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if fitted == size:
        return _encode(scaled, quality)
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(scaled, ((width - fitted[0]) // 2, (height - fitted[1]) // 2))
    return _encode(canvas, quality)


def _decode(data: bytes) -> Image.Image:
    """Return the image fully decoded (truncation only shows while decoding)."""
    return _load(_open(data), data)


def _open(data: bytes) -> ImageFile.ImageFile:
    """Read the image's header; refuse what is not an image or has too many pixels.

    Pillow only warns (DecompressionBombWarning) between MAX_IMAGE_PIXELS and twice that; turning
    the warning into an error with warnings.catch_warnings is not safe in executor threads (it
    swaps a process-wide filter list), so the pixel count is checked here instead.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except UnidentifiedImageError as err:
        raise AnnotateError("not an image (unreadable content)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise AnnotateError("too many pixels (decompression bomb)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise AnnotateError(f"corrupt or truncated image ({err})") from err
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        image.close()
        raise AnnotateError(f"too many pixels ({image.width}x{image.height}, decompression bomb)")
    return image


def _draft(image: Image.Image, size: tuple[int, int], factor: float = 2.0) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale, still factor times the size needed."""
    if image.format not in {"JPEG", "MPO"}:
        return
    try:
        orientation = image.getexif().get(_ORIENTATION)
    except OSError, SyntaxError, ValueError:
        orientation = None
    width, height = image.size
    if orientation in _SWAPS_SIDES:
        width, height = height, width
    scale = min(size[0] / width, size[1] / height) * factor
    if scale < 1:
        needed = (math.ceil(width * scale), math.ceil(height * scale))
        if orientation in _SWAPS_SIDES:
            needed = (needed[1], needed[0])
        image.draft(None, needed)


def _load(image: ImageFile.ImageFile, data: bytes) -> Image.Image:
    """Decode the pixels; a JPEG without its end marker is truncated even if Pillow copes.

    (Pillow fills a cut JPEG with grey when ImageFile.LOAD_TRUNCATED_IMAGES is set anywhere in
    the process, so the marker is checked here rather than trusted to the decoder.)
    """
    if image.format in {"JPEG", "MPO"} and not data.rstrip(b"\x00").endswith(_JPEG_END):
        image.close()
        raise AnnotateError("corrupt or truncated image (no end-of-image marker)")
    # One decoder call for the whole image (Pillow feeds 64 KB at a time by default): the
    # decoder releases the interpreter lock while it runs, so a busy event loop cannot make it
    # wait for the lock again between blocks.
    image.decodermaxblock = max(image.decodermaxblock, len(data))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        image.close()
        raise AnnotateError(f"corrupt or truncated image ({err})") from err
    return image


def _oriented(image: Image.Image) -> Image.Image:
    """Turn the image upright by its EXIF orientation, in place (no copy of the frame).

    A broken EXIF block is ignored rather than refused: the frame is still worth showing.
    """
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as err:
        _LOGGER.debug("Ignoring unreadable EXIF orientation: %s", err)
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Return the image as RGB: transparency laid on black, 16-bit and float values scaled."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I", "F"} or image.mode.startswith("I;16"):
        # Stretched from darkest to brightest, as thermal cameras' own viewers show them.
        values = image.convert("F")
        low, high = cast(tuple[float, float], values.getextrema())
        span = high - low or 1.0
        gray = values.point(lambda v: (v - low) * (255.0 / span))
        return gray.convert("L").convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (0, 0, 0))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _encode(image: Image.Image, quality: int) -> bytes:
    """Return the image as a baseline JPEG (no EXIF: the pixels are already upright).

    Colour is kept at full resolution (4:4:4): the default 4:2:0 averages colour over 2x2
    pixels, which turns a thin red line into a grey-pink one. It costs ~3 ms at 1080p.
    """
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def _draw(frame: Image.Image, detections: Sequence[Detection]) -> None:
    """Draw every box first and every tag after, so no box line runs across another's tag."""
    short_side = min(frame.width, frame.height)
    line_width = max(1, round(_LINE_WIDTH * short_side / _REFERENCE_SIDE))
    font = _font(max(_MIN_FONT_SIZE, round(_FONT_SIZE * short_side / _REFERENCE_SIDE)))
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
    with _FONT_LOCK:
        for box, color, text in boxes:
            _draw_tag(draw, box, frame_width=frame.width, color=color, text=text, font=font)


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


def _draw_tag(
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
