"""core.annotate: boxes, tags and thumbnails checked pixel by pixel on decoded results."""

from concurrent.futures import ThreadPoolExecutor
import io
import struct
from typing import Any
import zlib

from PIL import Image, ImageFont
import pytest

from custom_components.ai_security.core import annotate as annotate_module, box_drawing
from custom_components.ai_security.core.annotate import (
    AnnotatedFrame,
    AnnotateError,
    annotate,
    color_for,
    thumbnail,
)
from custom_components.ai_security.core.models import BoundingBox, Detection

GREY = (128, 128, 128)
PERSON = "#E74856"
CAR = "#3B82F6"

type RGB = tuple[int, int, int]


def rgb(color: str) -> RGB:
    """Return "#RRGGBB" as a tuple."""
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def near(pixel: object, color: str | RGB, tolerance: int = 40) -> bool:
    """Return whether an RGB pixel is within tolerance of color on every channel (JPEG blurs)."""
    expected = rgb(color) if isinstance(color, str) else color
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def jpeg(
    size: tuple[int, int] = (1920, 1080), color: RGB = GREY, *, mode: str = "RGB", **save: object
) -> bytes:
    """Return a plain image of one colour encoded as JPEG (or the format in save)."""
    image = Image.new("RGB", size, color)
    if mode == "P":  # an adaptive palette keeps the colour exactly, the web palette would not
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, str(save.pop("format", "JPEG")), **save)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Return the JPEG decoded to RGB."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.convert("RGB")


def detection(label: str, x: float, y: float, w: float, h: float, conf: float = 0.9) -> Detection:
    """Return a detection of label with box [x, y, w, h]."""
    return Detection(label=label, confidence=conf, bbox=BoundingBox(x=x, y=y, w=w, h=h))


def edge_run(image: Image.Image, y: int, x_from: int, color: str) -> int:
    """Return how many pixels in a row, from x_from rightwards, are closer to color than grey."""
    count = 0
    for x in range(x_from, image.width):
        pixel = image.getpixel((x, y))
        assert isinstance(pixel, tuple)
        to_color = sum(abs(int(a) - b) for a, b in zip(pixel, rgb(color), strict=True))
        to_grey = sum(abs(int(a) - b) for a, b in zip(pixel, GREY, strict=True))
        if to_color >= to_grey:
            break
        count += 1
    return count


def png_header(width: int, height: int) -> bytes:
    """Return a PNG whose header declares width x height and which holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("label", "color"),
    [
        ("person", "#E74856"),
        ("car", "#3B82F6"),
        ("truck", "#3B82F6"),
        ("dog", "#76B900"),
        ("cat", "#76B900"),
        ("bicycle", "#FFB800"),
        ("motorcycle", "#FFB800"),
        ("bird", "#A855F7"),
        ("Person ", "#E74856"),
        ("umbrella", "#FFFFFF"),
        ("", "#FFFFFF"),
    ],
)
def test_color_for(label: str, color: str) -> None:
    """Each class has its colour (case and spaces ignored), anything else is white."""
    assert color_for(label) == color


def test_boxes_in_their_class_colours() -> None:
    """Box edges carry the class colour, 3 px wide at 1080p; inside and outside stay untouched."""
    result = annotate(
        jpeg(), [detection("person", 400, 300, 300, 400), detection("car", 1000, 500, 400, 200)]
    )
    assert isinstance(result, AnnotatedFrame)
    assert (result.width, result.height) == (1920, 1080)
    image = decode(result.jpeg)
    assert image.size == (1920, 1080)
    assert near(image.getpixel((401, 500)), PERSON)  # left edge
    assert near(image.getpixel((698, 500)), PERSON)  # right edge (x + w - 1 = 699)
    assert near(image.getpixel((550, 698)), PERSON)  # bottom edge
    assert near(image.getpixel((450, 500)), GREY, 6)  # inside
    assert near(image.getpixel((396, 500)), GREY, 6)  # outside
    assert edge_run(image, 500, 399, PERSON) == 0
    assert edge_run(image, 500, 400, PERSON) == 3
    assert near(image.getpixel((1001, 600)), CAR)
    assert near(image.getpixel((1200, 650)), GREY, 6)


def test_tag_above_the_box() -> None:
    """A filled tag of the box colour sits right above the box, with dark text on it."""
    image = decode(annotate(jpeg(), [detection("person", 400, 300, 300, 400, 0.95)]).jpeg)
    tag = [image.getpixel((x, 297)) for x in range(400, 430)]  # just above the top edge
    assert all(near(pixel, PERSON) for pixel in tag)
    assert near(image.getpixel((402, 285)), PERSON)
    assert near(image.getpixel((402, 250)), GREY, 6)  # tags are not that tall at 1080p
    region = image.crop((400, 265, 560, 300))
    dark = sum(
        1 for pixel in region.get_flattened_data() if isinstance(pixel, tuple) and max(pixel) < 80
    )
    assert dark > 50  # the text "person 95%" in black
    assert near(image.getpixel((410, 310)), GREY, 10)  # no tag inside the box


def test_tag_inside_when_the_box_touches_the_top() -> None:
    """With no room above, the tag goes inside the top of the box, still on the image."""
    image = decode(annotate(jpeg(), [detection("person", 400, 0, 300, 400)]).jpeg)
    assert near(image.getpixel((402, 1)), PERSON)
    assert near(image.getpixel((405, 12)), PERSON)  # the tag, below the 3 px edge
    assert near(image.getpixel((405, 60)), GREY, 10)


def test_tag_moves_left_at_the_right_border() -> None:
    """A box at the right border keeps its whole tag on the image."""
    image = decode(annotate(jpeg(), [detection("person", 1890, 500, 30, 100)]).jpeg)
    assert near(image.getpixel((1919, 497)), PERSON)
    assert near(image.getpixel((1800, 497)), PERSON)  # the tag reaches left of the box


@pytest.mark.parametrize(
    ("size", "width"), [((640, 360), 1), ((1280, 720), 2), ((1920, 1080), 3), ((3840, 2160), 6)]
)
def test_line_width_scales_with_the_image(size: tuple[int, int], width: int) -> None:
    """3 px at 1080p, proportional to the shorter side, never under 1 px."""
    w, h = size
    image = decode(annotate(jpeg(size), [detection("car", w // 4, h // 4, w // 2, h // 2)]).jpeg)
    assert edge_run(image, h // 2, w // 4, CAR) == width


def test_boxes_clipped_and_degenerate_ones_skipped() -> None:
    """A box running off the frame is drawn up to the border; empty or NaN boxes draw nothing."""
    plain = decode(annotate(jpeg(), []).jpeg)
    skipped = [
        detection("person", 500, 500, 0, 100),
        detection("person", 500, 500, 100, -5),
        detection("person", float("nan"), 500, 100, 100),
        detection("person", 500, 500, float("inf"), 100),
        detection("person", 2500, 500, 100, 100),
        detection("person", -300, -300, 200, 200),
    ]
    untouched = decode(annotate(jpeg(), skipped).jpeg)
    assert list(untouched.get_flattened_data()) == list(plain.get_flattened_data())
    clipped = decode(annotate(jpeg(), [detection("car", 1800, 900, 500, 500)]).jpeg)
    assert near(clipped.getpixel((1919, 1000)), CAR)  # right edge at the border
    assert near(clipped.getpixel((1850, 1079)), CAR)  # bottom edge at the border


def test_odd_labels_and_confidences() -> None:
    """Control characters, very long labels and out-of-range confidences still draw a tag."""
    detections = [
        detection("\tperson\n", 100, 200, 100, 100, float("nan")),
        detection("do\ng\x00", 1000, 200, 100, 100, 0.5),
        detection("x" * 500, 400, 200, 100, 100, 7.0),
        detection("", 700, 200, 100, 100, -1.0),
    ]
    image = decode(annotate(jpeg(), detections).jpeg)
    assert near(image.getpixel((101, 197)), PERSON)
    assert near(image.getpixel((1001, 197)), "#FFFFFF")  # "do g" is no class
    assert near(image.getpixel((401, 197)), "#FFFFFF")
    labels = [box_drawing._label_text(detection) for detection in detections]
    assert labels == ["person", "do g 50%", "x" * 37 + "... 100%", "object 0%"]


def test_text_colour_contrasts() -> None:
    """Dark text on light tags, white text on dark ones."""
    assert box_drawing._text_color("#FFB800") == "#000000"
    assert box_drawing._text_color(PERSON) == "#000000"
    assert box_drawing._text_color("#1E3A8A") == "#FFFFFF"
    assert box_drawing._text_color("#000000") == "#FFFFFF"


def test_default_font_when_no_truetype(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any TrueType font installed, Pillow's built-in font still labels the box."""

    truetype = ImageFont.truetype

    def no_font(font: object, *args: Any, **kwargs: Any) -> ImageFont.FreeTypeFont:
        if isinstance(font, str):  # a font installed on the system: there is none
            raise OSError("cannot open resource")
        return truetype(font, *args, **kwargs)  # type: ignore[arg-type]  # Pillow's own bytes

    box_drawing._font.cache_clear()
    monkeypatch.setattr(ImageFont, "truetype", no_font)
    try:
        image = decode(annotate(jpeg(), [detection("person", 400, 300, 300, 400)]).jpeg)
    finally:
        box_drawing._font.cache_clear()
    region = image.crop((400, 265, 560, 300))
    assert sum(1 for p in region.get_flattened_data() if isinstance(p, tuple) and max(p) < 80) > 30
    assert near(image.getpixel((401, 297)), PERSON)


def test_thumbnail_letterboxed() -> None:
    """A 16:9 frame becomes exactly 320x240 with black bars above and below."""
    data = thumbnail(jpeg(color=(250, 250, 250)))
    image = decode(data)
    assert image.size == (320, 240)
    assert near(image.getpixel((160, 5)), (0, 0, 0), 10)  # bar: 30 px top and bottom
    assert near(image.getpixel((160, 234)), (0, 0, 0), 10)
    assert near(image.getpixel((160, 40)), (250, 250, 250), 10)
    assert near(image.getpixel((2, 120)), (250, 250, 250), 10)  # full width
    portrait = decode(thumbnail(jpeg((1080, 1920), (250, 250, 250))))
    assert portrait.size == (320, 240)
    assert near(portrait.getpixel((5, 120)), (0, 0, 0), 10)  # bars left and right
    assert near(portrait.getpixel((160, 2)), (250, 250, 250), 10)
    exact = decode(thumbnail(jpeg((640, 480), (250, 250, 250))))
    assert near(exact.getpixel((1, 1)), (250, 250, 250), 10)  # 4:3 fills it: no bars
    small = decode(thumbnail(jpeg((32, 18), (250, 250, 250))))
    assert small.size == (320, 240)  # small frames are scaled up to fit
    assert near(small.getpixel((160, 40)), (250, 250, 250), 10)


def test_thumbnail_of_an_image_and_other_sizes() -> None:
    """A PIL image is used as it is and not modified; size and quality are honoured."""
    source = Image.new("RGB", (1000, 500), (250, 0, 0))
    image = decode(thumbnail(source, (100, 100), 50))
    assert image.size == (100, 100)
    assert near(image.getpixel((50, 50)), (250, 0, 0))
    assert near(image.getpixel((50, 5)), (0, 0, 0), 10)
    assert source.size == (1000, 500)
    with pytest.raises(ValueError, match="must be positive"):
        thumbnail(source, (0, 240))


def test_annotated_thumbnail_shows_the_boxes() -> None:
    """The thumbnail is of the annotated frame: a big person box shows in it."""
    result = annotate(jpeg(), [detection("person", 0, 0, 1920, 1080)])
    image = decode(result.thumbnail)
    assert image.size == (320, 240)
    assert near(image.getpixel((160, 5)), (0, 0, 0), 10)
    assert near(image.getpixel((0, 120)), PERSON, 70)  # the left edge, downscaled
    assert near(image.getpixel((160, 120)), GREY, 10)


def oriented_jpeg(orientation: int, size: tuple[int, int] = (400, 300)) -> bytes:
    """Return a grey JPEG, its top-left quarter red, tagged with an EXIF orientation."""
    image = Image.new("RGB", size, GREY)
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_exif_orientation_applied_before_drawing() -> None:
    """Orientation 6 (rotate 90 clockwise): boxes are drawn on the upright 300x400 frame."""
    result = annotate(oriented_jpeg(6), [detection("car", 20, 250, 100, 100)])
    assert (result.width, result.height) == (300, 400)
    image = decode(result.jpeg)
    assert image.size == (300, 400)
    assert near(image.getpixel((290, 10)), (255, 0, 0))  # raw top-left is now top-right
    assert near(image.getpixel((10, 10)), GREY, 10)
    # The box's bottom edge at y = 349 only exists in the upright frame (the raw one is 300 high).
    assert near(image.getpixel((70, 349)), CAR)
    assert near(image.getpixel((20, 300)), CAR)
    with Image.open(io.BytesIO(result.jpeg)) as reopened:
        assert reopened.getexif().get(0x0112) is None  # viewers must not turn it again
    thumb = decode(thumbnail(oriented_jpeg(6)))
    assert near(thumb.getpixel((100, 180)), GREY, 10)
    assert near(thumb.getpixel((220, 40)), (255, 0, 0))  # upright in the thumbnail too
    assert near(thumb.getpixel((40, 120)), (0, 0, 0), 10)  # portrait: bars left and right


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_thumbnail_of_a_large_oriented_jpeg(orientation: int) -> None:
    """A 4000x3000 JPEG is decoded at reduced scale for its thumbnail, still upright and sharp."""
    thumb = decode(thumbnail(oriented_jpeg(orientation, (4000, 3000))))
    assert thumb.size == (320, 240)
    # Where the raw top-left red quarter ends up once turned upright.
    red_at = {1: (80, 60), 3: (240, 180), 6: (200, 60), 8: (120, 180)}[orientation]
    grey_at = {1: (240, 180), 3: (80, 60), 6: (120, 180), 8: (200, 60)}[orientation]
    assert near(thumb.getpixel(red_at), (255, 0, 0))
    assert near(thumb.getpixel(grey_at), GREY, 10)
    if orientation in {6, 8}:  # upright it is portrait: bars left and right
        assert near(thumb.getpixel((20, 120)), (0, 0, 0), 10)
    else:  # 4:3 fills the thumbnail
        assert near(thumb.getpixel((2, 238)), GREY, 10)


@pytest.mark.parametrize(
    ("mode", "save", "background"),
    [
        ("RGBA", {"format": "PNG"}, GREY),
        ("P", {"format": "PNG"}, (200, 60, 40)),
        ("L", {"format": "JPEG"}, GREY),
        ("CMYK", {"format": "JPEG"}, (200, 60, 40)),
        ("LA", {"format": "PNG"}, GREY),
        ("1", {"format": "PNG"}, (255, 255, 255)),  # grey would dither
        ("RGB", {"format": "WEBP", "lossless": True}, GREY),
        ("RGB", {"format": "BMP"}, GREY),
        ("RGB", {"format": "GIF"}, (200, 60, 40)),
        ("RGB", {"format": "TIFF"}, GREY),
    ],
)
def test_image_modes_and_formats(mode: str, save: dict[str, object], background: RGB) -> None:
    """Any mode or common format comes out as an RGB JPEG with coloured boxes."""
    data = jpeg((640, 480), background, mode=mode, **save)
    result = annotate(data, [detection("car", 100, 100, 200, 200)])
    image = decode(result.jpeg)
    assert image.size == (640, 480)
    assert near(image.getpixel((100, 200)), CAR)
    assert near(image.getpixel((400, 400)), background, 12)


def test_transparency_laid_on_black() -> None:
    """Fully transparent pixels become black, not whatever colour they hid."""
    image = Image.new("RGBA", (64, 48), (255, 255, 255, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    result = decode(annotate(buffer.getvalue(), []).jpeg)
    assert near(result.getpixel((30, 30)), (0, 0, 0), 8)


def test_sixteen_bit_grey_scaled() -> None:
    """A 16-bit grey image (thermal cameras) is scaled to 8 bits, not clipped to white."""
    image = Image.new("I;16", (64, 48), 1000)
    image.paste(3000, (0, 0, 32, 48))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    result = decode(annotate(buffer.getvalue(), []).jpeg)
    assert near(result.getpixel((10, 10)), (255, 255, 255), 8)
    assert near(result.getpixel((50, 10)), (0, 0, 0), 8)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an image"),
        (b"this is not an image at all" * 10, "not an image"),
        (b"P6\n2 2\n255\n" + b"\x00" * 12, "not an image"),  # PPM: not a camera format
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
        (jpeg()[:2000], "truncated"),
        (jpeg()[: len(jpeg()) // 2], "truncated"),
        (jpeg()[:-2], "truncated"),
        (jpeg((640, 480), format="PNG")[:-40], "truncated"),
    ],
)
def test_unreadable_input(data: bytes, reason: str) -> None:
    """Garbage, unsupported formats and truncated files raise AnnotateError with a reason."""
    with pytest.raises(AnnotateError, match=reason):
        annotate(data, [detection("person", 10, 10, 10, 10)])
    with pytest.raises(AnnotateError, match=reason):
        thumbnail(data)


def test_decompression_bomb_header() -> None:
    """A PNG declaring 100000x100000 pixels is refused before any pixel is decoded."""
    with pytest.raises(AnnotateError, match="too many pixels"):
        annotate(png_header(100_000, 100_000), [])
    with pytest.raises(AnnotateError, match="too many pixels"):
        thumbnail(png_header(100_000, 100_000))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [40, 100])
def test_decompression_bomb_limit(monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    """Over MAX_IMAGE_PIXELS is refused: where Pillow only warns (40x40) and where it raises."""
    data = jpeg((side, side))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(AnnotateError, match="too many pixels"):
        annotate(data, [])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert annotate(data, []).width == side  # the limit off: accepted


def test_quality() -> None:
    """A lower quality gives a smaller full-size JPEG."""
    noisy = Image.effect_noise((640, 480), 60).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    high = annotate(buffer.getvalue(), [], quality=95)
    low = annotate(buffer.getvalue(), [], quality=40)
    assert len(low.jpeg) < len(high.jpeg) / 2


def test_threads_at_once() -> None:
    """Executor threads can annotate at the same time (the shared font is locked)."""
    data = jpeg((640, 480))
    detections = [detection(label, 50 * i, 100, 40, 40) for i, label in enumerate(["person"] * 8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: annotate(data, detections), range(16)))
    assert len({result.jpeg for result in results}) == 1


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1920, 1080), (960, 540)), ((3840, 2160), (960, 540)), ((1280, 720), (1280, 720))],
)
def test_the_key_frame_is_drawn_small_with_its_boxes_where_they_belong(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    """A large upload's key frame is decoded at a reduced scale, no smaller than 960x540.

    The box, given in the full-size frame, lands on the same part of the smaller picture.
    """
    width, height = size
    box = detection("person", width * 0.25, height * 0.25, width * 0.5, height * 0.5)
    frame = annotate_module.annotate_key_frame(jpeg(size), [box])
    image = decode(frame.jpeg)
    assert image.size == expected == (frame.width, frame.height)
    assert frame.thumbnail == b""
    left, top = round(expected[0] * 0.25), round(expected[1] * 0.5)
    assert near(image.getpixel((left + 1, top)), PERSON)  # the box's left edge
    assert near(image.getpixel((left - 6, top)), GREY, tolerance=12)  # beside it, untouched
    assert near(image.getpixel((expected[0] // 2, expected[1] // 2)), GREY, tolerance=12)


def test_a_turned_key_frame_is_upright_with_its_box() -> None:
    """EXIF orientation 6 (turned 90°): the key frame is upright, the box on the upright frame."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = jpeg((1920, 1080), exif=exif.tobytes())  # shown 1080 wide, 1920 high
    box = detection("person", 1080 * 0.25, 1920 * 0.25, 1080 * 0.5, 1920 * 0.5)
    frame = annotate_module.annotate_key_frame(stored, [box])
    image = decode(frame.jpeg)
    assert image.size == (540, 960)
    assert near(image.getpixel((round(540 * 0.25) + 1, 480)), PERSON)
