"""Camera pictures of one colour each, and telling which upload a notification's picture shows.

An upload is a 1920x1080 JPEG of one flat colour (the detector stub's person box lies inside that
frame). The integration draws its boxes and label on the incident's key frame, away from the
bottom-left corner, so that corner still shows the upload's colour: reading it back from the
picture a notification links to says which upload the picture was made from. The colours are a
5x5x5 grid, any two 50 apart on some channel; JPEG keeps a flat colour within a few levels.
"""

import io
import itertools

import aiohttp
from PIL import Image

from scripts.bench_lib.images import unique_copy

WIDTH = 1920
HEIGHT = 1080
LEVELS = (30, 80, 130, 180, 230)
TOLERANCE = 20
"""Largest difference per channel still taken as the same colour."""

type Colour = tuple[int, int, int]

PALETTE: tuple[Colour, ...] = tuple(itertools.product(LEVELS, LEVELS, LEVELS))
"""The 125 colours."""


def colour_of(index: int) -> Colour:
    """Return upload index's colour (after 125 uploads the colours repeat)."""
    return PALETTE[index % len(PALETTE)]


def flat_jpeg(colour: Colour, tag: str) -> bytes:
    """Return a 1920x1080 JPEG of one colour, made unique by tag (a comment: same pixels)."""
    buffer = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), colour).save(buffer, "JPEG", quality=90)
    return unique_copy(buffer.getvalue(), tag.encode())


def corner_colour(jpeg: bytes) -> Colour:
    """Return the colour near a picture's bottom-left corner, away from the drawn boxes."""
    with Image.open(io.BytesIO(jpeg)) as image:
        pixel = image.convert("RGB").getpixel((10, image.height - 10))
    if not isinstance(pixel, tuple):
        raise TypeError("not an RGB picture")
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def same_colour(a: Colour, b: Colour) -> bool:
    """Return whether two colours are one colour after JPEG."""
    return all(abs(x - y) <= TOLERANCE for x, y in zip(a, b, strict=True))


async def fetch(session: aiohttp.ClientSession, base_url: str, url: str) -> bytes | None:
    """Return the picture behind a signed URL, loaded without a token as a phone does."""
    async with session.get(base_url + url) as response:
        if response.status != 200:
            return None
        return await response.read()
