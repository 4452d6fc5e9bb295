"""Feed the demo's camera folders with realistic uploads, so a newcomer sees the integration work.

Why: a fresh install shows nothing until a camera uploads, and nobody has cameras pointed at their
development box. This program plays the cameras: every few seconds it writes a snapshot (JPEG,
1280x720, like an FTP-uploading IP camera) or now and then a short clip (H.264 MP4) into one folder
per camera, so that within a minute of `scripts/develop` the dashboard shows cameras appearing,
detections of people on most snapshots, quiet frames without anyone, and events with clips.

What the frames hold: a generated scene per camera (sky, a house wall with door and windows, a
driveway or lawn, a fence, texture and sensor noise, and a timestamp in the corner, as real cameras
burn in) with a person composited in. The people are photos that ship inside installed packages,
so nothing is downloaded: scikit-image's astronaut (Eileen Collins) and matplotlib's Grace Hopper.
Both are half-length portraits; each is cut out of its studio background and stood on drawn legs.
The demo's detector, OpenCV's HOG people detector, was trained on whole upright pedestrians: on a
pasted portrait it fires, but mostly with a box beside or inside the person, and on a cut-out
upper body of Grace Hopper hardly at all; a standing figure it finds, box on the person, on about
19 frames in 20, and the empty scenes on none (they have no trees: a trunk under a crown is a
"person" to HOG). Except one thing on purpose: the garden has a stone statue of a person, which
HOG finds at the same place in every frame, the demo's repeated false alarm (two of its incidents
marked "False alarm" in the card make it a learned spot).

How it writes: the way an FTP upload finishes, each file first goes to a hidden temporary name in
its final folder (the integration ignores dotfiles) and is then renamed into place atomically, as
`<root>/<Camera>/<YYYY-MM-DD>/<Camera>_<YYYYmmdd-HHMMSS>_<n>.jpg|.mp4`.

Run it as `python -m scripts.demo.feeder --root DIR` (see --help); it stops cleanly on Ctrl-C or
SIGTERM with a one-line summary, after --count files, or after one round with --once.
"""

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
import datetime as dt
import functools
import hashlib
import io
import math
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Final
import uuid

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

WIDTH, HEIGHT = 1280, 720
"""Every frame's size: a common IP camera's 720p main stream."""
DEFAULT_CAMERAS = ("Front Door", "Driveway", "Garden")
JPEG_QUALITY = 85
CLIP_SECONDS = 3
CLIP_FPS = 5
DEFAULT_INTERVAL = 6.0
"""Seconds between two uploads of one camera; the cameras' uploads are spread over it."""
DEFAULT_CLIP_EVERY = 5
"""Every this many uploads of a camera is a clip instead of a snapshot."""
DEFAULT_PERSON_SHARE = 0.6
"""With --visit 0: the share of snapshots with a person in them; the others show the empty scene."""
DEFAULT_VISIT = 120.0
"""Seconds a person stays in a camera's view on each visit (every snapshot then shows them)."""
DEFAULT_GAP = 180.0
"""Seconds between two visits of one camera (its snapshots then show the empty scene). The
cameras' visits are staggered over visit + gap, so one is often busy while the others are quiet."""

Rng = np.random.Generator


def _say(message: str) -> None:
    """Write one line to stderr, prefixed with the program's name."""
    sys.stderr.write(f"feeder: {message}\n")
    sys.stderr.flush()


def _count(number: int, noun: str) -> str:
    """Return "1 clip", "2 clips": number and noun, plural when it is not one."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _rng_for(*parts: object) -> Rng:
    """Return a random generator seeded from parts, stable across runs and Python processes."""
    digest = hashlib.sha256("\0".join(str(part) for part in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


# --- People -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Portrait:
    """A photo of a person shipped in a package, and where the person is in it."""

    name: str
    load: Callable[[], Image.Image]
    head: tuple[tuple[int, int, int, int], ...]
    """Ellipses (left, top, right, bottom) covering head, hair and hat, in the photo's pixels."""
    body: tuple[tuple[int, int], ...]
    """A polygon around neck, shoulders and torso, down to the photo's bottom edge."""
    legs: float
    """How long hips and legs are, in multiples of the photo's height (its head to its bottom)."""
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]


def _astronaut() -> Image.Image:
    """Return scikit-image's astronaut (512x512 RGB): Eileen Collins in her orange suit."""
    from skimage import data  # noqa: PLC0415 - slow import, only needed once

    return Image.fromarray(data.astronaut()).convert("RGB")


def _grace_hopper() -> Image.Image:
    """Return matplotlib's sample photo of Grace Hopper (512x600 RGB).

    get_sample_data returns an open file object by default (asfileobj=True, matplotlib 3.11
    included); asfileobj=False gives the file's path (a str) instead, which Pillow opens and closes.
    """
    from matplotlib import cbook  # noqa: PLC0415 - slow import, only needed once

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return image.convert("RGB")


PORTRAITS = (
    Portrait(
        name="astronaut",
        load=_astronaut,
        head=((150, 12, 302, 192),),
        body=(
            (130, 165),
            (280, 160),
            (305, 190),
            (340, 225),
            (358, 275),
            (362, 330),
            (316, 360),
            (290, 400),
            (282, 512),
            (20, 512),
            (18, 330),
            (28, 262),
            (60, 215),
            (105, 185),
        ),
        legs=1.45,
        trousers=(40, 44, 56),
        shoes=(25, 22, 20),
    ),
    Portrait(
        name="grace hopper",
        load=_grace_hopper,
        head=((168, 22, 370, 175), (152, 110, 378, 342)),
        body=(
            (215, 305),
            (330, 305),
            (400, 352),
            (465, 372),
            (498, 412),
            (510, 600),
            (12, 600),
            (38, 400),
            (70, 380),
            (150, 342),
        ),
        legs=1.6,
        trousers=(20, 24, 40),
        shoes=(15, 15, 15),
    ),
)


@functools.cache
def _upper_body(index: int) -> Image.Image:
    """Return portrait index cut out of its studio background, as RGBA with soft edges."""
    portrait = PORTRAITS[index]
    photo = portrait.load()
    mask = Image.new("L", photo.size, 0)
    draw = ImageDraw.Draw(mask)
    for ellipse in portrait.head:
        draw.ellipse(ellipse, fill=255)
    draw.polygon(portrait.body, fill=255)
    # Shrink the outline a little, then soften it: no rim of studio backdrop around the person.
    mask = mask.filter(ImageFilter.MinFilter(5)).filter(ImageFilter.GaussianBlur(2.0))
    left = min(*(x for x, _ in portrait.body), *(box[0] for box in portrait.head))
    right = max(*(x for x, _ in portrait.body), *(box[2] for box in portrait.head))
    top = min(box[1] for box in portrait.head)
    cut = photo.convert("RGBA")
    cut.putalpha(mask)
    return cut.crop((left, top, right, photo.height))


MAX_SWING = math.radians(16)
"""How far a leg swings from upright at a full stride."""


def person_sprite(index: int, stride: float = 0.0) -> Image.Image:
    """Return a standing figure (RGBA): portrait index's upper body on drawn trousers and shoes.

    The portraits end at the chest, so the figure gets hips and legs long enough for an adult's
    build (about seven heads tall in all). stride in [-1, 1] swings the legs apart, for walking;
    0 stands still. The feet always reach the sprite's bottom edge, where the ground is.
    """
    portrait = PORTRAITS[index]
    body = _upper_body(index)
    width, height = body.size
    below = round(height * portrait.legs)
    shoe = max(4, round(below * 0.035))
    hip_half = width * 0.30
    thigh, ankle = hip_half * 0.95, hip_half * 0.45
    margin = math.ceil(math.sin(MAX_SWING) * below + ankle)
    canvas = Image.new("RGBA", (width + 2 * margin, height + below + shoe), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    trousers = (*portrait.trousers, 255)
    waist_y = height - round(height * 0.05)
    ground_y = height + below
    centre = canvas.width / 2
    crotch_y = waist_y + below * 0.28
    draw.polygon(
        [
            (centre - hip_half * 0.92, waist_y),
            (centre + hip_half * 0.92, waist_y),
            (centre + hip_half, crotch_y),
            (centre - hip_half, crotch_y),
        ],
        fill=trousers,
    )
    swing = MAX_SWING * max(-1.0, min(1.0, stride))
    for side in (-1, 1):
        top_x = centre + side * hip_half / 2
        foot_x = top_x + math.tan(swing * side) * (ground_y - crotch_y)
        draw.polygon(
            [
                (top_x - thigh / 2, crotch_y - below * 0.05),
                (top_x + thigh / 2, crotch_y - below * 0.05),
                (foot_x + ankle / 2, ground_y),
                (foot_x - ankle / 2, ground_y),
            ],
            fill=trousers,
        )
        toe = side * ankle * 0.5
        draw.ellipse(
            (
                foot_x - ankle * 0.7 + toe,
                ground_y - shoe,
                foot_x + ankle * 0.7 + toe,
                ground_y + shoe,
            ),
            fill=(*portrait.shoes, 255),
        )
    canvas.alpha_composite(body, (margin, 0))
    return canvas


# --- Scenes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scene:
    """A camera's fixed view: the background and where people can stand in it."""

    background: Image.Image
    horizon: int
    """The y where the ground starts; people's feet stand below it."""
    walk_top: int
    """The highest y a person's feet may be at (further away is smaller)."""
    near_height: int
    """A person's height in pixels with their feet at the frame's bottom edge."""
    far_height: int
    """A person's height in pixels with their feet at walk_top."""


def _gradient(top: Sequence[float], bottom: Sequence[float], height: int) -> np.ndarray:
    """Return a height x WIDTH x 3 float array going from colour top to colour bottom."""
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    column = np.asarray(top, float) * (1 - ramp) + np.asarray(bottom, float) * ramp
    return np.repeat(column, WIDTH, axis=1)


def _texture(rng: Rng, height: int, width: int, grain: int, strength: float) -> np.ndarray:
    """Return smooth random variation (height x width x 1) for surfaces: plaster, grass, asphalt."""
    coarse = rng.normal(0.0, 1.0, (max(2, height // grain), max(2, width // grain)))
    image = Image.fromarray(((coarse.clip(-3, 3) + 3) * 42).astype(np.uint8))
    smooth = np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), float)
    fine = rng.normal(0.0, 0.35, (height, width))
    return ((smooth / 126.0 - 1.0) + fine)[:, :, None] * strength


def _jitter(rng: Rng, colour: Sequence[int], amount: int = 18) -> tuple[int, int, int]:
    """Return colour with each channel moved by up to amount, so each camera's house differs."""
    red, green, blue = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)
    return red, green, blue


def _draw_window(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: Rng) -> None:
    """Draw a window with frame, panes and a glint of sky."""
    left, top, right, bottom = box
    draw.rectangle(box, fill=_jitter(rng, (235, 235, 228), 10))
    glass = (left + 8, top + 8, right - 8, bottom - 8)
    draw.rectangle(glass, fill=_jitter(rng, (70, 90, 110), 12))
    middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
    draw.line((middle_x, top + 8, middle_x, bottom - 8), fill=(235, 235, 228), width=6)
    draw.line((left + 8, middle_y, right - 8, middle_y), fill=(235, 235, 228), width=6)
    draw.rectangle((left - 6, bottom, right + 6, bottom + 8), fill=(210, 210, 205))


def _draw_fence(draw: ImageDraw.ImageDraw, left: int, right: int, base: int, rng: Rng) -> None:
    """Draw a horizontal-board fence (boards, not pickets: pickets look like legs to HOG)."""
    height = int(rng.integers(70, 110))
    wood = _jitter(rng, (150, 110, 75), 20)
    for board in range(5):
        top = base - height + board * height // 5
        shade = tuple(max(0, c - (board % 2) * 14) for c in wood)
        draw.rectangle((left, top, right, top + height // 5 - 3), fill=shade)
    for post in range(left, right, 240):
        draw.rectangle((post, base - height - 8, post + 12, base), fill=(110, 80, 55))


def _draw_hedge(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: Rng) -> None:
    """Draw a clipped hedge: a long low band of green with a bumpy top and a leafy speckle.

    No trees: a trunk under a round crown looks like a person to HOG (a "head" on a "body") and
    fills an empty garden with detections; long horizontal shapes do not.
    """
    left, top, right, bottom = box
    leaves = _jitter(rng, (55, 100, 50), 15)
    draw.rectangle(box, fill=leaves)
    for x in range(left, right, 40):
        bump = int(rng.integers(12, 24))
        draw.ellipse((x - 10, top - bump, x + 50, top + bump), fill=leaves)
    for _ in range((right - left) * (bottom - top) // 60):
        cx = float(rng.uniform(left, right))
        cy = float(rng.uniform(top, bottom))
        radius = float(rng.uniform(2, 5))
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), fill=_jitter(rng, leaves, 22)
        )


def _layout_for(name: str, rng: Rng) -> str:
    """Return which kind of view a camera has: its name's hint, or a seeded choice."""
    lowered = name.casefold()
    for kind, hints in (
        ("door", ("door", "porch", "entr", "front")),
        ("driveway", ("drive", "garage", "car", "street", "gate")),
        ("garden", ("garden", "yard", "back", "lawn", "pool")),
    ):
        if any(hint in lowered for hint in hints):
            return kind
    return str(rng.choice(["door", "driveway", "garden"]))


def _door_view(image: Image.Image, horizon: int, rng: Rng) -> tuple[Image.Image, int, int]:
    """Draw a house front with door, windows and a path; return it, near and far heights."""
    draw = ImageDraw.Draw(image)
    wall = _jitter(rng, (200, 185, 160), 25)
    wall_left, wall_right = int(rng.integers(-40, 120)), int(rng.integers(1000, 1320))
    draw.rectangle((wall_left, 40, wall_right, horizon), fill=wall)
    door_x = int(rng.integers(480, 700))
    draw.rectangle((door_x - 10, horizon - 250, door_x + 140, horizon), fill=(235, 232, 225))
    draw.rectangle((door_x, horizon - 240, door_x + 130, horizon), fill=_jitter(rng, (90, 55, 35)))
    draw.ellipse((door_x + 105, horizon - 125, door_x + 115, horizon - 115), fill=(200, 180, 90))
    for window_x in (door_x - 330, door_x + 270):
        _draw_window(draw, (window_x, horizon - 210, window_x + 160, horizon - 80), rng)
    paving = _jitter(rng, (150, 148, 142), 12)
    draw.rectangle((door_x - 40, horizon, door_x + 170, horizon + 22), fill=paving)
    path = [
        (door_x - 20, horizon + 22),
        (door_x + 150, horizon + 22),
        (door_x + 330, HEIGHT),
        (door_x - 200, HEIGHT),
    ]
    draw.polygon(path, fill=paving)
    return image, 520, 330


def _driveway_view(image: Image.Image, horizon: int, rng: Rng) -> tuple[Image.Image, int, int]:
    """Draw a garage, a side fence and a tarmac drive; return it, near and far heights."""
    draw = ImageDraw.Draw(image)
    draw.rectangle((-10, 60, 760, horizon), fill=_jitter(rng, (185, 175, 165), 25))
    draw.polygon([(-10, 60), (375, -40), (760, 60)], fill=_jitter(rng, (120, 70, 60)))
    garage = (120, horizon - 200, 520, horizon)
    draw.rectangle(garage, fill=(225, 225, 220))
    for slat in range(garage[1] + 25, garage[3], 25):
        draw.line((garage[0], slat, garage[2], slat), fill=(190, 190, 185), width=3)
    _draw_window(draw, (580, horizon - 200, 710, horizon - 90), rng)
    _draw_fence(draw, 760, WIDTH, horizon, rng)
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    drive = [(100, horizon), (540, horizon), (980, HEIGHT), (-200, HEIGHT)]
    ImageDraw.Draw(mask).polygon(drive, fill=255)
    tarmac = np.full((HEIGHT, WIDTH, 3), _jitter(rng, (85, 85, 88), 10), float)
    tarmac += _texture(rng, HEIGHT, WIDTH, 3, 9.0)
    alpha = np.asarray(mask, float)[:, :, None] / 255
    blended = np.asarray(image, float) * (1 - alpha) + tarmac * alpha
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8)), 480, 250


def _garden_view(image: Image.Image, horizon: int, rng: Rng) -> tuple[Image.Image, int, int]:
    """Draw a fence, a hedge, a shed, bushes and a path; return it, near and far heights."""
    draw = ImageDraw.Draw(image)
    _draw_fence(draw, -10, WIDTH + 10, horizon, rng)
    shed_x = int(rng.integers(850, 1000))
    draw.rectangle((shed_x, horizon - 170, shed_x + 230, horizon), fill=_jitter(rng, (120, 95, 70)))
    roof = [
        (shed_x - 20, horizon - 170),
        (shed_x + 115, horizon - 230),
        (shed_x + 250, horizon - 170),
    ]
    draw.polygon(roof, fill=(70, 60, 55))
    hedge_left = int(rng.integers(-20, 200))
    hedge_right = hedge_left + int(rng.integers(380, 600))
    _draw_hedge(draw, (hedge_left, horizon - 130, hedge_right, horizon), rng)
    for _ in range(4):
        x, y = int(rng.integers(0, WIDTH)), int(rng.integers(horizon + 10, horizon + 60))
        draw.ellipse((x - 60, y - 35, x + 60, y + 25), fill=_jitter(rng, (55, 95, 50), 15))
    path = [(560, horizon), (660, horizon), (760, HEIGHT), (360, HEIGHT)]
    draw.polygon(path, fill=_jitter(rng, (170, 160, 140), 10))
    return image, 500, 280


STATUE_FEET: Final = (230, 130)
"""Where the garden's statue stands: its centre x and its feet's y below the horizon."""
STATUE_HEIGHT: Final = 330


def _with_statue(image: Image.Image, horizon: int) -> Image.Image:
    """Stand a stone statue of a person on the lawn, the same in every frame of the garden.

    The demo's repeated false alarm: HOG takes it for a person in every snapshot, at one place,
    as a real detector takes a garden statue, so marking two of its incidents "False alarm" in
    the card makes it a learned spot (and a real visitor beside it still alerts).
    """
    figure = person_sprite(0, 0.0)
    stone = ImageOps.grayscale(figure.convert("RGB"))
    stone = ImageOps.colorize(stone, black=(70, 68, 64), white=(214, 208, 196)).convert("RGBA")
    stone.putalpha(figure.getchannel("A"))
    width = round(stone.width * STATUE_HEIGHT / stone.height)
    stone = stone.resize((width, STATUE_HEIGHT), Image.Resampling.LANCZOS)
    centre_x, below = STATUE_FEET
    feet_y = horizon + below
    plinth = (centre_x - 45, feet_y - 4, centre_x + 45, feet_y + 22)
    ImageDraw.Draw(image).rectangle(plinth, fill=(150, 146, 138))
    canvas = image.convert("RGBA")
    canvas.alpha_composite(stone, (centre_x - width // 2, feet_y - STATUE_HEIGHT))
    return canvas.convert("RGB")


_VIEWS = {"door": _door_view, "driveway": _driveway_view, "garden": _garden_view}


@functools.cache
def scene_for(camera: str, *, statue: bool = True) -> Scene:
    """Return camera's view, generated from its name alone so its frames always look alike.

    A garden has its statue unless statue is False (for tests of something else in it).
    """
    rng = _rng_for("scene", camera)
    kind = _layout_for(camera, rng)
    horizon = int(rng.integers(250, 330))
    sky = _gradient(_jitter(rng, (120, 165, 215)), _jitter(rng, (205, 220, 235)), horizon)
    sky += _texture(rng, horizon, WIDTH, 160, 4.0)
    grass = (95, 125, 70) if kind == "garden" else (110, 118, 90)
    far_grass, near_grass = _jitter(rng, grass), _jitter(rng, [round(c * 0.8) for c in grass])
    ground = _gradient(far_grass, near_grass, HEIGHT - horizon)
    ground += _texture(rng, HEIGHT - horizon, WIDTH, 12, 10.0)
    image = Image.fromarray(np.concatenate([sky, ground]).clip(0, 255).astype(np.uint8))
    image, near, far = _VIEWS[kind](image, horizon, rng)
    if kind == "garden" and statue:
        image = _with_statue(image, horizon)
    return Scene(
        background=image.filter(ImageFilter.GaussianBlur(0.8)),
        horizon=horizon,
        walk_top=horizon + 60,
        near_height=near,
        far_height=far,
    )


# --- Frames -------------------------------------------------------------------------------------


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Return Pillow's built-in font at a size readable on a 720p frame (bitmap if no FreeType)."""
    try:
        return ImageFont.load_default(size=22)
    except ImportError, OSError, TypeError:
        return ImageFont.load_default()


def _overlay(image: Image.Image, camera: str, when: dt.datetime) -> None:
    """Burn in the camera's name and the time on a dark band, as camera firmwares do."""
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font()
    for text, corner in ((when.strftime("%Y-%m-%d %H:%M:%S"), "left"), (camera, "right")):
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x = 14 if corner == "left" else WIDTH - 14 - (right - left)
        y = 12 if corner == "left" else HEIGHT - 14 - (bottom - top) - 8
        draw.rectangle((x - 6, y - 4, x + right - left + 6, y + bottom + 4), fill=(0, 0, 0, 110))
        draw.text((x - left, y), text, font=font, fill=(255, 255, 255, 235))


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a person stands in a frame."""

    portrait: int
    centre_x: float
    feet_y: float
    stride: float = 0.0


def person_height(scene: Scene, feet_y: float) -> int:
    """Return how tall a person standing with their feet at feet_y looks (nearer is taller)."""
    depth = (feet_y - scene.walk_top) / max(1, HEIGHT - scene.walk_top)
    return round(scene.far_height + (scene.near_height - scene.far_height) * depth)


def render(
    scene: Scene,
    camera: str,
    when: dt.datetime,
    person: Placement | None,
    rng: Rng,
    *,
    gain: float = 1.0,
) -> Image.Image:
    """Return one camera frame: the scene, the person if any, sensor noise and the timestamp.

    gain scales the brightness, as a camera's exposure drifts with the light; a clip keeps one.
    """
    frame = scene.background.copy()
    if person is not None:
        sprite = person_sprite(person.portrait, person.stride)
        height = person_height(scene, person.feet_y)
        width = round(sprite.width * height / sprite.height)
        sprite = sprite.resize((width, height), Image.Resampling.LANCZOS)
        # Soft shadow at the feet so the figure stands on the ground rather than floating.
        shadow = Image.new("RGBA", frame.size, (0, 0, 0, 0))
        left = round(person.centre_x - width / 2)
        top = round(person.feet_y - height)
        ImageDraw.Draw(shadow).ellipse(
            (
                person.centre_x - height * 0.2,
                person.feet_y - height * 0.03,
                person.centre_x + height * 0.2,
                person.feet_y + height * 0.03,
            ),
            fill=(0, 0, 0, 70),
        )
        frame = Image.alpha_composite(frame.convert("RGBA"), shadow.filter(ImageFilter.BoxBlur(6)))
        frame.alpha_composite(sprite, (max(0, left), max(0, top)), (max(0, -left), max(0, -top)))
        frame = frame.convert("RGB")
    pixels = np.asarray(frame, np.float32)
    pixels = pixels * gain + rng.normal(0.0, 3.5, pixels.shape).astype(np.float32)
    frame = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    _overlay(frame, camera, when)
    return frame


def random_placement(scene: Scene, rng: Rng) -> Placement:
    """Return a person standing somewhere on the scene's ground, wholly inside the frame."""
    feet_y = float(rng.uniform(scene.walk_top + 40, HEIGHT - 12))
    height = person_height(scene, feet_y)
    half_width = height * 0.22
    centre_x = float(rng.uniform(half_width + 10, WIDTH - half_width - 10))
    return Placement(
        portrait=int(rng.integers(len(PORTRAITS))),
        centre_x=centre_x,
        feet_y=feet_y,
        stride=float(rng.uniform(-0.4, 0.4)),
    )


def walk(scene: Scene, rng: Rng, frames: int) -> Iterator[Placement]:
    """Yield a person's placements as they walk across the frame, one per clip frame."""
    portrait = int(rng.integers(len(PORTRAITS)))
    feet_y = float(rng.uniform(scene.walk_top + 80, HEIGHT - 20))
    half_width = person_height(scene, feet_y) * 0.22
    start, end = half_width + 20, WIDTH - half_width - 20
    if rng.random() < 0.5:
        start, end = end, start
    for step in range(frames):
        progress = step / max(1, frames - 1)
        yield Placement(
            portrait=portrait,
            centre_x=start + (end - start) * progress,
            feet_y=feet_y,
            stride=math.sin(step * math.pi / 2),
        )


# --- Writing ------------------------------------------------------------------------------------


def _temporary(folder: Path, suffix: str) -> Path:
    """Return a hidden temporary name in folder: the integration ignores names starting with "."."""
    return folder / f".tmp-{uuid.uuid4().hex}{suffix}"


def _publish(temporary: Path, final: Path) -> Path:
    """Rename a finished temporary file to its final name, the moment an FTP upload completes."""
    while final.exists():  # Two uploads in the same second after a restart: keep both.
        stem, number = final.stem.rsplit("_", 1)
        final = final.with_name(f"{stem}_{int(number) + 1}{final.suffix}")
    os.replace(temporary, final)
    return final


def write_snapshot(image: Image.Image, final: Path) -> Path:
    """Write image as a JPEG to final (atomically, through a hidden temporary name)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    temporary = _temporary(final.parent, ".jpg")
    try:
        with temporary.open("wb") as file:
            file.write(buffer.getvalue())
        return _publish(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def write_clip(frames: Iterator[Image.Image], final: Path, ffmpeg: str) -> Path:
    """Encode frames as an H.264 MP4 at final (atomically, through a hidden temporary name).

    ffmpeg runs in its own session so that Ctrl-C, which reaches the whole terminal's process
    group, does not cut a clip in half: the feeder finishes it, then stops.
    """
    temporary = _temporary(final.parent, ".mp4")
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(CLIP_FPS),
        "-i", "-",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
        "-movflags", "+faststart", str(temporary),
    ]  # fmt: skip
    try:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, ffmpeg found on PATH
            command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        assert process.stdin is not None  # noqa: S101 - stdin=PIPE guarantees it
        try:
            for frame in frames:
                process.stdin.write(frame.tobytes())
        except BrokenPipeError:
            pass  # ffmpeg failed; its message comes below
        except BaseException:
            process.kill()  # no half clip may appear after the temporary name is removed
            process.wait()
            raise
        finally:
            process.stdin.close()
        errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.wait() != 0:
            raise RuntimeError(f"ffmpeg failed ({process.returncode}): {errors.strip()[-500:]}")
        return _publish(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def _file_stem(camera: str) -> str:
    """Return camera's name as it starts its files: "Front Door" -> "Front_Door"."""
    return re.sub(r"[^\w-]+", "_", camera).strip("_") or "camera"


# --- The feeder ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Camera:
    """One simulated camera: its folder's name, its scene and how many uploads it made."""

    name: str
    index: int
    uploads: int = 0
    scene: Scene = field(init=False)

    def __post_init__(self) -> None:
        """Generate (or fetch the cached) scene for the camera's name."""
        self.scene = scene_for(self.name)


@dataclass(slots=True)
class Totals:
    """What the feeder wrote so far, for the closing summary."""

    snapshots: int = 0
    clips: int = 0
    with_person: int = 0

    @property
    def files(self) -> int:
        """Return the number of files written."""
        return self.snapshots + self.clips


@dataclass(slots=True)
class Feeder:
    """Writes uploads for a set of cameras; one call of upload() is one camera's tick."""

    root: Path
    cameras: list[Camera]
    rng: Rng
    clip_every: int = DEFAULT_CLIP_EVERY
    person_share: float = DEFAULT_PERSON_SHARE
    ffmpeg: str | None = None
    totals: Totals = field(default_factory=Totals)
    visit: float = 0.0
    """Seconds of each visit; 0: every snapshot shows a person at random (person_share)."""
    gap: float = DEFAULT_GAP
    started: float = field(default_factory=time.monotonic)

    def visiting(self, camera: Camera, at: float | None = None) -> bool:
        """Return whether a person is in camera's view at monotonic time at (visits mode)."""
        cycle = self.visit + self.gap
        offset = camera.index * cycle / max(1, len(self.cameras))
        elapsed = (at if at is not None else time.monotonic()) - self.started - offset
        return elapsed >= 0 and elapsed % cycle < self.visit

    def upload(self, camera: Camera, now: dt.datetime | None = None) -> Path:
        """Write camera's next upload and return its path; log one line about it.

        A camera's first upload always shows a person, so a fresh demo gets a detection at once.
        Every clip_every-th upload is a clip (shifted by the camera's index, so that a short run
        already has some); the cameras' clips hold a person walking across. With visits, a person
        is in every snapshot (and the clips) while the camera's visit lasts, and in none between.
        """
        now = now or dt.datetime.now().astimezone()
        camera.uploads += 1
        number = camera.uploads
        folder = self.root / camera.name / now.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{_file_stem(camera.name)}_{now:%Y%m%d-%H%M%S}_{number}"
        visiting = self.visit > 0 and self.visiting(camera)
        is_clip = (
            self.clip_every > 0
            and (number + camera.index) % self.clip_every == 0
            and number > 1
            and (self.visit <= 0 or visiting)
        )
        gain = 1.0 + float(self.rng.normal(0.0, 0.03))
        if is_clip and self.ffmpeg is not None:
            steps = walk(camera.scene, self.rng, CLIP_SECONDS * CLIP_FPS)
            frames = (
                render(
                    camera.scene,
                    camera.name,
                    now + dt.timedelta(seconds=step / CLIP_FPS),
                    placement,
                    self.rng,
                    gain=gain,
                )
                for step, placement in enumerate(steps)
            )
            path = write_clip(frames, folder / f"{stem}.mp4", self.ffmpeg)
            self.totals.clips += 1
            self.totals.with_person += 1
            what = "clip of a person walking by"
        else:
            if self.visit > 0:
                person = number == 1 or visiting
            else:
                person = number == 1 or self.rng.random() < self.person_share
            placement = random_placement(camera.scene, self.rng) if person else None
            image = render(camera.scene, camera.name, now, placement, self.rng, gain=gain)
            path = write_snapshot(image, folder / f"{stem}.jpg")
            self.totals.snapshots += 1
            self.totals.with_person += int(person)
            what = "snapshot with person" if person else "snapshot, empty scene"
        _say(f"{camera.name}: {what} -> {path}")
        return path


def schedule(
    cameras: Sequence[Camera], interval: float, start: float
) -> Iterator[tuple[float, Camera]]:
    """Yield (due time, camera) forever: each camera every interval, the cameras spread over it."""
    step = interval / len(cameras)
    tick = 0
    while True:
        for camera in cameras:
            yield start + tick * interval + camera.index * step, camera
        tick += 1


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo.feeder",
        description="Write realistic camera uploads (snapshots and clips, with and without a "
        "person) into one folder per camera, for the demo.",
    )
    parser.add_argument("--root", type=Path, required=True, help="the cameras' root folder")
    parser.add_argument(
        "--cameras",
        default=",".join(DEFAULT_CAMERAS),
        help="comma-separated camera folder names (default: %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help="seconds between two uploads of one camera, staggered across cameras "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--once", action="store_true", help="write one upload per camera at once, then exit"
    )
    parser.add_argument("--count", type=int, help="stop after this many files in all")
    parser.add_argument("--seed", type=int, help="seed for what happens when (default: random)")
    parser.add_argument(
        "--clip-every",
        type=int,
        default=DEFAULT_CLIP_EVERY,
        help="every Nth upload of a camera is a clip; 0 for snapshots only (default: %(default)s)",
    )
    parser.add_argument(
        "--person-share",
        type=float,
        default=DEFAULT_PERSON_SHARE,
        help="with --visit 0, the share of snapshots showing a person (default: %(default)s)",
    )
    parser.add_argument(
        "--visit",
        type=float,
        default=DEFAULT_VISIT,
        help="seconds a person stays on each visit of a camera; 0: people at random "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=DEFAULT_GAP,
        help="seconds between a camera's visits (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.cameras = [name.strip() for name in args.cameras.split(",") if name.strip()]
    if not args.cameras:
        parser.error("--cameras names no camera")
    if len(set(args.cameras)) != len(args.cameras):
        parser.error("--cameras names a camera twice")
    for name in args.cameras:
        if name.startswith(".") or "/" in name or os.sep in name or name in {".", ".."}:
            parser.error(f"--cameras: {name!r} is no usable folder name")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    if args.count is not None and args.count <= 0:
        parser.error("--count must be positive")
    if not 0.0 <= args.person_share <= 1.0:
        parser.error("--person-share must be between 0 and 1")
    if args.visit < 0 or args.gap < 0 or (args.visit > 0 and args.gap <= 0):
        parser.error("--visit and --gap must be positive (--visit 0: people at random)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the feeder until --once's round, --count files, Ctrl-C or SIGTERM; return 0."""
    args = _parse_args(argv)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None and args.clip_every > 0:
        _say("ffmpeg not found on PATH: writing snapshots only")
    feeder = Feeder(
        root=args.root,
        cameras=[Camera(name, index) for index, name in enumerate(args.cameras)],
        rng=np.random.default_rng(args.seed),
        clip_every=args.clip_every,
        person_share=args.person_share,
        ffmpeg=ffmpeg,
        visit=args.visit,
        gap=args.gap,
    )
    limit = len(feeder.cameras) if args.once else args.count
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        for due, camera in schedule(feeder.cameras, args.interval, started):
            if stop.is_set() or (limit is not None and feeder.totals.files >= limit):
                break
            if not args.once and stop.wait(max(0.0, due - time.monotonic())):
                break
            feeder.upload(camera)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    totals = feeder.totals
    _say(
        f"wrote {_count(totals.files, 'file')} ({_count(totals.snapshots, 'snapshot')}, "
        f"{_count(totals.clips, 'clip')}; {totals.with_person} with a person) for "
        f"{_count(len(feeder.cameras), 'camera')} under {args.root} "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
