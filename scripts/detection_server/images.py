"""Turning an uploaded file into an RGB image, refusing what would hurt the server.

Why a module of its own: every way an upload can be bad (empty, not an image, cut short, too many
pixels, a decompression bomb) must end in one clear client error, and the size check must happen
before a single pixel is decoded: a 40 KB PNG can declare 400 megapixels and take gigabytes of
memory to decode. Pillow's own guard only warns up to twice its limit, so this module checks the
header's size against the server's limit itself and keeps Pillow's guard as a second line.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000
"""The largest image accepted: 40 megapixels (a 8K frame is 33). Larger ones get HTTP 413."""


class ImageRejectedError(Exception):
    """An upload that is not a usable image; status is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status beside the message the client gets as its JSON error."""
        super().__init__(message)
        self.status = status
        self.message = message


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return data as an RGB image with its EXIF orientation applied.

    Raises ImageRejectedError: 400 for an empty or truncated file, 415 for a format Pillow cannot
    read, 413 for more than max_pixels (checked from the header, before decoding).
    """
    if not data:
        raise ImageRejectedError(400, "the file is empty")
    try:
        with warnings.catch_warnings():
            # A size over Pillow's own warning limit is judged below, against max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejectedError(415, "the file is not an image this server can read") from None
    except Image.DecompressionBombError as err:
        raise ImageRejectedError(413, _too_large(max_pixels, err)) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageRejectedError(400, f"the image could not be read: {err}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejectedError(400, f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejectedError(
            413,
            f"the image has {width}x{height} = {width * height / 1e6:.1f} megapixels, "
            f"more than this server's limit of {max_pixels / 1e6:g}",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except Image.DecompressionBombError as err:
        raise ImageRejectedError(413, _too_large(max_pixels, err)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise ImageRejectedError(400, f"the image could not be decoded: {err}") from None


def _too_large(max_pixels: int, err: Exception) -> str:
    return f"the image has more megapixels than this server's limit of {max_pixels / 1e6:g} ({err})"
