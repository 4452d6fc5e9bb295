"""Camera pictures in and JPEG out: decoding hostile images safely, turned upright, in RGB.

The input comes from cameras, so it is treated as hostile: only common raster formats are
opened, decompression bombs are refused, and a corrupt or truncated image becomes an
AnnotateError rather than a half-grey picture. It is separate from the drawing (annotate.py,
box_drawing.py, the zones' pictures) because every picture made here starts and ends the same
way whatever is drawn on it. Everything is synchronous and CPU-bound: run it in an executor.
"""

import io
import logging
import math
from typing import Final, cast

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

_LOGGER = logging.getLogger(__name__)

_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""What cameras upload (JPEG includes MPO). Pillow's other formats are refused: some (EPS) start
external programs, others are rarely used parsers that nothing here needs to expose."""
_JPEG_END: Final = b"\xff\xd9"
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ORIENTATION: Final = ExifTags.Base.Orientation
_SWAPS_SIDES: Final = frozenset({5, 6, 7, 8})
"""EXIF orientations that rotate by 90 degrees, so width and height trade places."""


class AnnotateError(Exception):
    """The image cannot be annotated; the text says why in words a user understands."""


def decode_image(data: bytes) -> Image.Image:
    """Return the image fully decoded (truncation only shows while decoding)."""
    return load_image(open_image(data), data)


def open_image(data: bytes) -> ImageFile.ImageFile:
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


def draft(image: Image.Image, size: tuple[int, int], factor: float = 2.0) -> None:
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


def load_image(image: ImageFile.ImageFile, data: bytes) -> Image.Image:
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


def oriented(image: Image.Image) -> Image.Image:
    """Turn the image upright by its EXIF orientation, in place (no copy of the frame).

    A broken EXIF block is ignored rather than refused: the frame is still worth showing.
    """
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as err:
        _LOGGER.debug("Ignoring unreadable EXIF orientation: %s", err)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
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


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Return the image as a baseline JPEG (no EXIF: the pixels are already upright).

    Colour is kept at full resolution (4:4:4): the default 4:2:0 averages colour over 2x2
    pixels, which turns a thin red line into a grey-pink one. It costs ~3 ms at 1080p.
    """
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()
