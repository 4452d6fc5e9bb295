"""Which uploads count, which camera they belong to, and whether their content is usable.

Everything here is synchronous file work: the pipeline runs it in an executor, never on the loop.
"""

from dataclasses import dataclass, field
import hashlib
import io
import os
from pathlib import PurePath
import re
from typing import BinaryIO
import unicodedata
import warnings
import zlib

from PIL import ExifTags, Image, UnidentifiedImageError

from .models import MediaType
from .uploads import OutsideRootError, open_upload

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".avi", ".mov"})
MIN_VIDEO_BYTES = 1024
"""A clip smaller than this cannot hold a frame; FTP clients create such stubs while uploading."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Uploads larger than this are refused instead of being read into memory."""
MAX_IMAGE_PIXELS = 100_000_000
"""More pixels than this is no camera's frame but a decompression bomb: refused."""

# Suffixes FTP servers and camera firmwares use for files still being written.
_TEMPORARY_SUFFIXES = (".part", ".tmp", ".temp", ".filepart", ".crdownload", "~")


_JPEG_END = b"\xff\xd9"
_ORIENTATION = ExifTags.Base.Orientation
_SWAPS_SIDES = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the picture by 90 degrees to show it, so its sides trade places."""
_PNG_EXIF = b"eXIf"


class RejectedMediaError(Exception):
    """An upload that cannot be processed; the message says why, naming no internals."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Intake:
    """What intake learnt about an upload it accepted."""

    media_type: MediaType
    sha256: str
    size: int
    width: int = 0
    """An image's width as shown, after its EXIF orientation; the frame detector boxes are in."""
    height: int = 0
    image_format: str = ""
    content: bytes | None = field(default=None, repr=False)
    """An image's bytes as read for the check, so detection need not read the file again."""


def media_type_for(name: str) -> MediaType | None:
    """Return the media type a file name promises, or None for names to ignore quietly.

    Hidden files and the temporary names FTP servers use while a file is uploading are ignored.
    """
    lowered = name.lower()
    if not lowered or lowered.startswith(".") or lowered.endswith(_TEMPORARY_SUFFIXES):
        return None
    suffix = PurePath(lowered).suffix
    if suffix in IMAGE_EXTENSIONS:
        return MediaType.IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return MediaType.VIDEO
    return None


def camera_id_for(folder_name: str) -> str:
    """Return the camera id a folder name suggests: "Caméra Jardin" -> "camera_jardin".

    Accents are dropped, letters without an ASCII form (Cyrillic, CJK) are kept as they are,
    everything else becomes "_", runs collapse and the ends are trimmed. Two folders can suggest the
    same id; the camera registry then gives the later one a numbered id.

    A name without a letter or digit ("!!!", "📷") gives "camera_" and six hex digits of a hash of
    the name: readable, the same at every start, and distinct for every such folder whatever order
    they appear in (a bare "camera" would take the id of a folder really named "Camera").
    """
    decomposed = unicodedata.normalize("NFKD", folder_name)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    lowered = unicodedata.normalize("NFC", without_marks).casefold()
    slug = re.sub(r"[\W_]+", "_", lowered).strip("_")
    if slug:
        return slug
    # surrogatepass: a folder name that is not valid UTF-8 arrives with lone surrogates.
    digest = hashlib.sha256(folder_name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"camera_{digest[:6]}"


def classify(root: str, path: str) -> tuple[str, MediaType] | None:
    """Return (camera folder name, media type) of an upload path, or None when it is not one.

    An upload lies in a folder below root (the camera), at any depth; files directly in the root,
    paths outside it, anything inside a hidden folder and names media_type_for ignores are not.
    """
    relative = os.path.relpath(path, root)
    parts = PurePath(relative).parts
    if len(parts) < 2 or parts[0] == os.pardir:
        return None
    if any(part.startswith(".") for part in parts[:-1]):
        return None
    media_type = media_type_for(parts[-1])
    if media_type is None:
        return None
    return parts[0], media_type


def inspect_upload(root: str, path: str) -> Intake:
    """Check an upload and hash its content; raise RejectedMediaError with the reason if unusable.

    Raises FileNotFoundError when the file vanished since it was announced: that is not an error
    of the upload, the caller just forgets about it.
    """
    media_type = media_type_for(os.path.basename(path))
    if media_type is None:
        raise RejectedMediaError("not an image or video file name")
    try:
        with open_upload(root, path) as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise RejectedMediaError("empty file")
            if size > MAX_FILE_BYTES:
                raise RejectedMediaError(f"too large ({size / 1048576:.0f} MiB)")
            if media_type is MediaType.VIDEO:
                if size < MIN_VIDEO_BYTES:
                    raise RejectedMediaError(f"too small for a video ({size} bytes)")
                return Intake(media_type=media_type, sha256=_hash_file(file), size=size)
            content = file.read()
    except OutsideRootError as err:
        raise RejectedMediaError(str(err)) from err
    width, height, image_format = _check_image(content)
    return Intake(
        media_type=media_type,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        width=width,
        height=height,
        image_format=image_format,
        content=content,
    )


def _hash_file(file: BinaryIO) -> str:
    """Return the SHA-256 of a file, read in chunks so a large clip never sits in memory."""
    digest = hashlib.sha256()
    while chunk := file.read(1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


def _check_image(content: bytes) -> tuple[int, int, str]:
    """Check the image is whole; return its upright size (EXIF orientation applied) and format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
    except UnidentifiedImageError as err:
        raise RejectedMediaError("not an image (unreadable content)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise RejectedMediaError("too many pixels (decompression bomb)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise RejectedMediaError(f"corrupt or truncated image ({err})") from err
    with image:
        width, height = image.size
        image_format = image.format or ""
        if width * height > MAX_IMAGE_PIXELS:
            raise RejectedMediaError(f"too many pixels ({width}x{height})")
        # Read before the completeness check: verify() leaves no file to read the EXIF from.
        upright = upright_size(image, content)
        try:
            _check_complete(image, content)
        except (OSError, SyntaxError, ValueError) as err:
            raise RejectedMediaError(f"corrupt or truncated image ({err})") from err
        return *upright, image_format


def upright_size(image: Image.Image, content: bytes | None = None) -> tuple[int, int]:
    """Return an opened image's (width, height) as shown: after its EXIF orientation.

    The one notion of an image's frame: the detection server (as RT-DETR servers do), Pillow's
    exif_transpose in annotate.py and ffmpeg all show a picture turned by its orientation, so
    boxes come back in that frame and every size checked against them must be its size. Only the
    EXIF block is read, not the pixels; content (the file's bytes) lets a PNG whose eXIf chunk
    follows the pixel data be read without decoding it. A broken EXIF block counts as none, as
    exif_transpose ignores it too.
    """
    width, height = image.size
    try:
        if image.format == "PNG" and content is not None:
            raw = image.info.get("exif") or _png_exif(content)
            exif = Image.Exif()
            if raw:
                exif.load(raw)
        else:
            exif = image.getexif()
        turned = exif.get(_ORIENTATION) in _SWAPS_SIDES
    except OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError:
        turned = False
    return (height, width) if turned else (width, height)


def _png_exif(content: bytes) -> bytes | None:
    """Return the data of a PNG's eXIf chunk wherever it lies, None when it has none.

    A chunk is length, type, data, CRC; a match inside compressed pixel data is told apart by
    its CRC. bytes.find runs in C, so even a large PNG costs next to nothing.
    """
    start = content.find(_PNG_EXIF, 12)
    while start >= 0:
        length = int.from_bytes(content[start - 4 : start])
        end = start + 4 + length
        if end + 4 <= len(content):
            crc = int.from_bytes(content[end : end + 4])
            if zlib.crc32(content[start:end]) == crc:
                return content[start + 4 : end]
        start = content.find(_PNG_EXIF, start + 1)
    return None


def _check_complete(image: Image.Image, content: bytes) -> None:
    """Raise when the image is cut short, as cheaply as the format allows.

    Decoding every upload costs milliseconds each, at hundreds a second. A JPEG is complete when
    it ends with its end-of-image marker (some cameras pad zeros after it); a PNG's chunks and
    checksums are verified without inflating the pixels. Other formats are decoded.
    """
    if image.format == "JPEG":
        if not content.rstrip(b"\x00").endswith(_JPEG_END):
            raise ValueError("no end-of-image marker")
    elif image.format == "PNG":
        image.verify()
    else:
        image.load()
