"""core.media: which files are uploads, camera ids, and intake of good and bad files."""

import hashlib
import io
import os
from pathlib import Path
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps
import pytest

from custom_components.ai_security.core.media import (
    RejectedMediaError,
    camera_id_for,
    classify,
    inspect_upload,
    media_type_for,
)
from custom_components.ai_security.core.models import MediaType


def jpeg_bytes(width: int = 640, height: int = 480, quality: int = 85) -> bytes:
    """Return a JPEG with some structure (a gradient), as cameras produce."""
    gradient = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.stack([np.tile(gradient, (height, 1))] * 3, axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("snap.jpg", MediaType.IMAGE),
        ("SNAP.JPG", MediaType.IMAGE),
        ("a.Jpeg", MediaType.IMAGE),
        ("a.png", MediaType.IMAGE),
        ("clip.mp4", MediaType.VIDEO),
        ("clip.MKV", MediaType.VIDEO),
        ("clip.avi", MediaType.VIDEO),
        ("clip.MoV", MediaType.VIDEO),
        ("snap.jpg.part", None),
        ("snap.jpg.tmp", None),
        ("snap.jpg~", None),
        (".snap.jpg", None),
        (".pureftpd-upload.5f2a.jpg", None),
        ("notes.txt", None),
        ("jpg", None),
        ("", None),
    ],
)
def test_media_type_for(name: str, expected: MediaType | None) -> None:
    """Images and videos of any case count; temporary, hidden and other files are ignored."""
    assert media_type_for(name) is expected


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("Front Door/snap.jpg", ("Front Door", MediaType.IMAGE)),
        ("Front Door/2026-11-26/14/clip.mp4", ("Front Door", MediaType.VIDEO)),
        ("snap.jpg", None),
        ("Front Door/.thumbs/snap.jpg", None),
        (".trash/Front Door/snap.jpg", None),
        ("Front Door/readme.txt", None),
        ("../elsewhere/snap.jpg", None),
    ],
)
def test_classify(relative: str, expected: tuple[str, MediaType] | None) -> None:
    """The camera is the first folder under the root; the root and hidden folders hold none."""
    root = "/srv/.ftp/cameras"  # a hidden folder above the root does not hide anything
    assert classify(root, os.path.normpath(os.path.join(root, relative))) == expected


@pytest.mark.parametrize(
    ("folder", "camera_id"),
    [
        ("Front Door", "front_door"),
        ("front-door", "front_door"),
        ("  --Garage__2--  ", "garage_2"),
        ("Caméra Jardin", "camera_jardin"),
        ("Straße", "strasse"),
        ("Дверь", "дверь"),
        ("玄関", "玄関"),
        ("!!!", "camera_e84c53"),
        ("", "camera_e3b0c4"),
    ],
)
def test_camera_id_for(folder: str, camera_id: str) -> None:
    """Ids are lower-case with runs of other characters as one "_", accents dropped, stable."""
    assert camera_id_for(folder) == camera_id
    assert camera_id_for(folder) == camera_id_for(folder)


def test_good_image_is_hashed(tmp_path: Path) -> None:
    """A camera JPEG is accepted with its size, format and the SHA-256 of its bytes."""
    content = jpeg_bytes(1920, 1080)
    path = tmp_path / "cam" / "a.jpg"
    path.parent.mkdir()
    path.write_bytes(content)
    intake = inspect_upload(str(tmp_path), str(path))
    assert intake.media_type is MediaType.IMAGE
    assert intake.sha256 == hashlib.sha256(content).hexdigest()
    assert (intake.width, intake.height, intake.image_format) == (1920, 1080, "JPEG")
    assert intake.size == len(content)


def test_png_named_jpg_is_an_image(tmp_path: Path) -> None:
    """The content decides, not the name: a PNG called .jpg is a good image."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "red").save(buffer, "PNG")
    path = tmp_path / "a.jpg"
    path.write_bytes(buffer.getvalue())
    intake = inspect_upload(str(tmp_path), str(path))
    assert (intake.width, intake.height, intake.image_format) == (320, 240, "PNG")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (jpeg_bytes()[:4000], "corrupt or truncated image"),
        (b"this is not an image, just text\n" * 20, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an image"),
    ],
    ids=["zero_bytes", "truncated_jpeg", "text_named_jpg", "png_header_only"],
)
def test_bad_images_are_rejected(tmp_path: Path, content: bytes, reason: str) -> None:
    """Unusable images are refused with a reason a user understands."""
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(RejectedMediaError, match=reason):
        inspect_upload(str(tmp_path), str(path))


def exif_with(orientation: object) -> bytes:
    """Return an EXIF block holding just an orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_late_exif(image: Image.Image, exif: bytes) -> bytes:
    """Return image as a PNG whose eXIf chunk follows the pixel data (the PNG spec allows it)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    plain = buffer.getvalue()
    end = plain.rindex(b"IEND") - 4
    return plain[:end] + png_chunk(b"eXIf", exif) + plain[end:]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_size_is_the_upright_one(tmp_path: Path, image_format: str, orientation: int) -> None:
    """The recorded size is the picture's as shown: EXIF orientations 5-8 trade its sides.

    The detection server turns a picture upright before it looks, so its boxes are in that frame.
    """
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "red").save(buffer, image_format, exif=exif_with(orientation))
    path = tmp_path / "cam" / "a.jpg"
    path.parent.mkdir()
    path.write_bytes(buffer.getvalue())
    intake = inspect_upload(str(tmp_path), str(path))
    expected = (300, 400) if orientation >= 5 else (400, 300)
    assert (intake.width, intake.height, intake.image_format) == (*expected, image_format)
    with Image.open(path) as image:
        assert ImageOps.exif_transpose(image).size == expected  # as the server turns it


def test_png_exif_after_the_pixels(tmp_path: Path) -> None:
    """A PNG's eXIf chunk after the pixel data counts too, read without decoding the picture."""
    content = png_with_late_exif(Image.new("RGB", (400, 300), "red"), exif_with(6))
    path = tmp_path / "cam" / "late.png"
    path.parent.mkdir()
    path.write_bytes(content)
    with Image.open(path) as image:
        assert "exif" not in image.info  # not seen in the header
        assert ImageOps.exif_transpose(image).size == (300, 400)  # but the server turns it
    intake = inspect_upload(str(tmp_path), str(path))
    assert (intake.width, intake.height) == (300, 400)


@pytest.mark.parametrize(
    "exif",
    [
        exif_with(9),  # not an orientation
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12",  # cut short
    ],
    ids=["unknown", "truncated"],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_odd_exif_keeps_the_stored_size(tmp_path: Path, exif: bytes) -> None:
    """An orientation that is none Pillow knows, or a broken EXIF block, turns nothing.

    The annotated pictures ignore it the same way (annotate.py), so the frames still agree.
    """
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "red").save(buffer, "JPEG", exif=exif)
    path = tmp_path / "cam" / "odd.jpg"
    path.parent.mkdir()
    path.write_bytes(buffer.getvalue())
    intake = inspect_upload(str(tmp_path), str(path))
    assert (intake.width, intake.height) == (400, 300)
    with Image.open(path) as image:
        assert ImageOps.exif_transpose(image).size == (400, 300)


def test_forty_megabyte_image_is_accepted(tmp_path: Path) -> None:
    """A very large (40 MB) but real photo is accepted, not mistaken for an attack."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(3700, 5600, 3), dtype=np.uint8)
    path = tmp_path / "huge.jpg"
    Image.fromarray(pixels).save(path, "JPEG", quality=100)
    assert path.stat().st_size >= 40 * 1000 * 1000
    intake = inspect_upload(str(tmp_path), str(path))
    assert (intake.width, intake.height) == (5600, 3700)


def test_decompression_bomb_is_rejected(tmp_path: Path) -> None:
    """A small file that claims a gigantic canvas is refused before it is decoded."""
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path, "PNG")
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(RejectedMediaError, match="too many pixels"):
        inspect_upload(str(tmp_path), str(path))


def test_videos_need_a_kilobyte(tmp_path: Path) -> None:
    """A video stub is refused; a plausible one is accepted and hashed (ffmpeg checks it later)."""
    stub = tmp_path / "stub.mp4"
    stub.write_bytes(b"\x00" * 1023)
    with pytest.raises(RejectedMediaError, match="too small for a video"):
        inspect_upload(str(tmp_path), str(stub))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(5000))
    intake = inspect_upload(str(tmp_path), str(clip))
    assert intake.media_type is MediaType.VIDEO
    assert intake.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_symlinks(tmp_path: Path) -> None:
    """A link to a file outside the camera root is not followed; one inside it is fine."""
    root = tmp_path / "root"
    (root / "cam").mkdir(parents=True)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg_bytes())
    inside = root / "cam" / "real.jpg"
    inside.write_bytes(jpeg_bytes())
    (root / "cam" / "escape.jpg").symlink_to(outside)
    (root / "cam" / "alias.jpg").symlink_to(inside)
    with pytest.raises(RejectedMediaError, match="outside the camera folder"):
        inspect_upload(str(root), str(root / "cam" / "escape.jpg"))
    assert inspect_upload(str(root), str(root / "cam" / "alias.jpg")).width == 640


def test_vanished_file(tmp_path: Path) -> None:
    """A file deleted before intake is not an error of the upload: FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        inspect_upload(str(tmp_path), str(tmp_path / "gone.jpg"))
