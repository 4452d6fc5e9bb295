"""Boxes, labels and thumbnails drawn on a frame, so people see at a glance what the detector saw.

Everything here is synchronous and CPU-bound (decoding, drawing, encoding JPEG): the pipeline runs
it in an executor, never on the event loop. A 1920x1080 frame with its thumbnail takes about 20 ms
on one core (scripts/bench_media measures it). This module makes the pictures (the annotated
frame, the key frame at a reduced scale, thumbnails); reading a camera's picture as hostile input
and encoding JPEG is image_codec's, and drawing the boxes and tags is box_drawing's.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from PIL import Image

from .box_drawing import CLASS_COLORS, DEFAULT_COLOR, color_for, draw_detections
from .image_codec import (
    AnnotateError,
    decode_image,
    draft,
    encode_jpeg,
    load_image,
    open_image,
    oriented,
    to_rgb,
)
from .models import BoundingBox, Detection

__all__ = [
    "CLASS_COLORS",
    "DEFAULT_COLOR",
    "KEY_FRAME_SIZE",
    "THUMBNAIL_QUALITY",
    "THUMBNAIL_SIZE",
    "AnnotateError",
    "AnnotatedFrame",
    "KeyFrameCanvas",
    "annotate",
    "annotate_key_frame",
    "color_for",
    "decode_key_frame",
    "draw_key_frame",
    "thumbnail",
]
"""The error and the colours are image_codec's and box_drawing's; named here too because the
pictures' callers (the pipeline, the camera entity, the clips) meet them through annotate."""

THUMBNAIL_SIZE: Final = (320, 240)
KEY_FRAME_SIZE: Final = (960, 540)
"""The least size of an incident's key frame: a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale
down to no less than this (a 1080p upload gives 960x540). Decoding and encoding a quarter of the
pixels is what lets the phone's picture exist within tens of milliseconds of the detection; the
full-size annotated frames follow it."""
THUMBNAIL_QUALITY: Final = 85


@dataclass(frozen=True, kw_only=True, slots=True)
class AnnotatedFrame:
    """A frame with its detections drawn on it, full size and as a thumbnail, both JPEG."""

    jpeg: bytes
    thumbnail: bytes
    width: int
    """Of the frame as shown, after its EXIF orientation was applied."""
    height: int


def annotate(image: bytes, detections: Sequence[Detection], *, quality: int = 90) -> AnnotatedFrame:
    """Draw each detection's box and a "label 95%" tag on the image; return JPEG and thumbnail.

    Blocking (decoding, drawing and encoding take milliseconds): run it in an executor. The
    image's EXIF orientation is applied first, because the detector reports boxes in the frame
    as it is shown. Boxes are clipped to the frame; empty or non-finite ones are skipped. Raises
    AnnotateError when the image is not one, is corrupt or truncated, or has too many pixels.
    """
    frame = to_rgb(oriented(decode_image(image)))
    draw_detections(frame, detections)
    return AnnotatedFrame(
        jpeg=encode_jpeg(frame, quality),
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
    opened = open_image(image)
    full_width = opened.size[0]
    draft(opened, size, factor=1.0)
    scale = opened.size[0] / full_width
    return KeyFrameCanvas(image=to_rgb(oriented(load_image(opened, image))), scale=scale)


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
    draw_detections(frame, detections)
    return AnnotatedFrame(
        jpeg=encode_jpeg(frame, quality), thumbnail=b"", width=frame.width, height=frame.height
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
        source = to_rgb(image)
    else:
        opened = open_image(image)
        draft(opened, size)
        source = to_rgb(oriented(load_image(opened, image)))
    scale = min(width / source.width, height / source.height)
    fitted = (
        min(width, max(1, round(source.width * scale))),
        min(height, max(1, round(source.height * scale))),
    )
    scaled = source.resize(fitted, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if fitted == size:
        return encode_jpeg(scaled, quality)
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(scaled, ((width - fitted[0]) // 2, (height - fitted[1]) // 2))
    return encode_jpeg(canvas, quality)
