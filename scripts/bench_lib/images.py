"""Camera-like JPEGs: 1920x1080 scenes of about 300 KB, each copy made unique for a few bytes.

Real snapshots compress to 200-400 KB at quality 85; pure noise compresses to 1.5 MB and a flat
gradient to 40 KB, and both would make intake (decode, hash) and the upload to the detector
unrealistically slow or fast. So a base image is a drawn scene (sky, ground, buildings with windows,
trees, a road) with low-frequency shading and just enough pixel noise, the noise tuned by bisection
until the encoded size is near the target. A handful of bases is made once; every upload is then a
base with a unique JPEG comment (COM) segment after the start-of-image marker, which changes the
bytes (and so the SHA-256 the pipeline deduplicates on) without re-encoding or changing pixels.
"""

from dataclasses import dataclass
import io
import struct

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH = 1920
HEIGHT = 1080
QUALITY = 85
TARGET_BYTES = 300_000
_SOI = b"\xff\xd8"
_COM = b"\xff\xfe"


@dataclass(frozen=True, slots=True)
class BaseImage:
    """An encoded base scene and the noise level that brought it to its size."""

    jpeg: bytes
    noise: float


def _scene(rng: np.random.Generator) -> np.ndarray:
    """Draw a street-camera-like scene as float32 RGB, before any pixel noise."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = int(HEIGHT * rng.uniform(0.35, 0.5))
    sky_top = rng.integers(90, 160, size=3)
    sky_low = rng.integers(170, 235, size=3)
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        color = tuple(int(a + (b - a) * t) for a, b in zip(sky_top, sky_low, strict=True))
        draw.line([(0, y), (WIDTH, y)], fill=color)
    ground = rng.integers(60, 120, size=3)
    for y in range(horizon, HEIGHT):
        t = (y - horizon) / max(1, HEIGHT - horizon)
        color = tuple(int(c * (0.8 + 0.4 * t)) for c in ground)
        draw.line([(0, y), (WIDTH, y)], fill=color)
    # A road in perspective.
    draw.polygon(
        [
            (WIDTH * 0.42, horizon),
            (WIDTH * 0.58, horizon),
            (WIDTH * 0.95, HEIGHT),
            (WIDTH * 0.05, HEIGHT),
        ],
        fill=(80, 80, 85),
    )
    for _ in range(int(rng.integers(5, 10))):  # buildings with rows of windows
        w, h = int(rng.integers(120, 380)), int(rng.integers(150, 420))
        x, base = int(rng.integers(0, WIDTH - w)), horizon + int(rng.integers(-20, 60))
        wall = tuple(int(v) for v in rng.integers(70, 200, size=3))
        draw.rectangle([x, base - h, x + w, base], fill=wall, outline=(40, 40, 40), width=3)
        for wy in range(base - h + 15, base - 30, 40):
            for wx in range(x + 12, x + w - 30, 38):
                lit = int(rng.integers(0, 3)) == 0
                draw.rectangle(
                    [wx, wy, wx + 22, wy + 26], fill=(230, 210, 140) if lit else (45, 55, 70)
                )
    for _ in range(int(rng.integers(6, 14))):  # trees and bushes
        r = int(rng.integers(30, 110))
        cx, cy = int(rng.integers(0, WIDTH)), horizon + int(rng.integers(0, HEIGHT - horizon))
        leaf = (int(rng.integers(20, 70)), int(rng.integers(70, 140)), int(rng.integers(20, 60)))
        draw.rectangle([cx - 6, cy, cx + 6, cy + r], fill=(70, 50, 30))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r // 2], fill=leaf)
    image = image.filter(ImageFilter.GaussianBlur(1.2))  # lenses are not pixel-sharp
    pixels = np.asarray(image, dtype=np.float32)
    # Low-frequency shading (light, dirt, compression of a real sensor's dynamics).
    shade = rng.normal(0.0, 1.0, size=(HEIGHT // 60, WIDTH // 60)).astype(np.float32)
    shade_image = Image.fromarray(shade, mode="F").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    pixels += np.asarray(shade_image, dtype=np.float32)[:, :, None] * 12.0
    return pixels


def _encode(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def make_base(seed: int, target: int = TARGET_BYTES, tolerance: float = 0.05) -> BaseImage:
    """Return a scene whose JPEG is within tolerance of target bytes (bisection on the noise)."""
    rng = np.random.default_rng(seed)
    scene = _scene(rng)
    noise_field = rng.normal(0.0, 1.0, size=scene.shape).astype(np.float32)
    low, high = 0.0, 40.0
    best: BaseImage | None = None
    for _ in range(12):
        sigma = (low + high) / 2
        jpeg = _encode(scene + noise_field * sigma)
        if best is None or abs(len(jpeg) - target) < abs(len(best.jpeg) - target):
            best = BaseImage(jpeg=jpeg, noise=sigma)
        if abs(len(jpeg) - target) <= target * tolerance:
            break
        if len(jpeg) < target:
            low = sigma
        else:
            high = sigma
    assert best is not None  # noqa: S101 - the loop runs at least once
    return best


def unique_copy(base: bytes, tag: bytes) -> bytes:
    """Return base with a COM segment holding tag right after SOI: new bytes, same pixels."""
    if not base.startswith(_SOI):
        raise ValueError("not a JPEG")
    if len(tag) > 65533:
        raise ValueError("a COM segment holds at most 65533 bytes")
    return b"".join((_SOI, _COM, struct.pack(">H", len(tag) + 2), tag, base[2:]))
