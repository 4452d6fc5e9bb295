"""An incident's pictures for a vision model: which frames, how large, with numbered boxes.

The model gets a few frames, not the whole visit: the first (how it began), the one with the
most confident detection (the clearest view), the last (how it ended), then more spread over
the visit when more are allowed. Each is scaled so its long side fits the model's budget (a
vision model turns pixels into tokens: a smaller picture costs fewer) and has the detector's
boxes drawn thinly, each tagged with a number that its caption and the detections' text repeat,
so the model can say "#2 is carrying a parcel". Captions are written here from our own data,
never from the picture or the detector's free text. Reading and drawing run in the executor.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
import hashlib
import logging
from typing import Final

from PIL import Image, ImageDraw

from .box_drawing import FONT_LOCK, color_for, draw_tag, scaled_font
from .event_uploads import read_file, upload_source
from .image_codec import AnnotateError, draft, encode_jpeg, load_image, open_image, oriented, to_rgb
from .llm_provider import PromptImage
from .models import BoundingBox, Detection
from .prompts import FrameKey, frame_key, prompt_label
from .storage import BlockingRunner
from .uploads import read_upload
from .video import VideoError, extract_frame

_LOGGER = logging.getLogger(__name__)

DEFAULT_FRAMES: Final = 3
DEFAULT_LONG_SIDE: Final = 768
VISION_QUALITY: Final = 80
"""JPEG quality of a frame for the model: its detail survives, and it costs no extra tokens."""
RANKS: Final = {"clearest": 0, "first": 1, "last": 2, "during": 3}
"""Which pictures are kept when fewer fit the model's context: the clearest view first."""
LINE_WIDTH: Final = 2
"""Thin boxes: the model must see what is inside them."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PickedFrame:
    """One frame chosen for the model, and why."""

    key: FrameKey
    detections: tuple[Detection, ...]
    why: str
    """"first", "clearest", "last" or "during"."""


def pick_frames(detections: Sequence[Detection], limit: int) -> list[PickedFrame]:
    """Return up to limit frames of the incident, in the order they were seen.

    First, clearest (the most confident detection) and last come first; more, when allowed,
    are spread evenly over the rest. With a limit of 1 the clearest frame is the one.
    """
    groups: dict[FrameKey, list[Detection]] = {}
    for detection in detections:
        groups.setdefault(frame_key(detection), []).append(detection)
    keys = list(groups)
    if limit <= 0 or not keys:
        return []
    clearest = max(keys, key=lambda key: max(d.confidence for d in groups[key]))
    chosen: dict[FrameKey, str] = {clearest: "clearest"}
    for key, why in ((keys[0], "first"), (keys[-1], "last")):
        if len(chosen) < limit:
            chosen.setdefault(key, why)
    rest = [key for key in keys if key not in chosen]
    spare = min(limit - len(chosen), len(rest))
    if spare > 0:
        step = len(rest) / spare
        for index in range(spare):
            chosen.setdefault(rest[int(index * step)], "during")
    return [
        PickedFrame(key=key, detections=tuple(groups[key]), why=chosen[key])
        for key in keys
        if key in chosen
    ]


def render_frame(image: bytes, numbered: Sequence[tuple[int, Detection]], long_side: int) -> bytes:
    """Return the frame scaled to long_side at most, its boxes drawn thin and tagged #n.

    Blocking: run it in an executor. Boxes are in the upright full-size frame (the detector's
    frame size, else the picture's). Raises AnnotateError for what is not a usable image.
    """
    opened = open_image(image)
    full_long = max(opened.size)
    draft(opened, (long_side, long_side), factor=1.0)
    frame = to_rgb(oriented(load_image(opened, image)))
    frame.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(frame)
    font = scaled_font(min(frame.width, frame.height))
    tags = []
    for number, detection in numbered:
        detected_long = max(detection.frame_width or 0, detection.frame_height or 0)
        scale = max(frame.size) / (detected_long or full_long)
        box = _box(detection.bbox, scale, frame.width, frame.height)
        if box is None:
            continue
        color = color_for(detection.label)
        draw.rectangle(box, outline=color, width=LINE_WIDTH)
        tags.append((box, color, f"#{number}"))
    with FONT_LOCK:
        for box, color, text in tags:
            draw_tag(draw, box, frame_width=frame.width, color=color, text=text, font=font)
    return encode_jpeg(frame, VISION_QUALITY)


def _box(
    bbox: BoundingBox, scale: float, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Return the box scaled into the frame as inclusive corners, or None if nothing is left."""
    left, top = max(0, round(bbox.x * scale)), max(0, round(bbox.y * scale))
    right = min(width, round((bbox.x + bbox.w) * scale))
    bottom = min(height, round((bbox.y + bbox.h) * scale))
    if right - left < 1 or bottom - top < 1:
        return None
    return left, top, right - 1, bottom - 1


def caption(
    index: int,
    count: int,
    picked: PickedFrame,
    numbers: Sequence[tuple[int, Detection]],
    tz: tzinfo,
) -> str:
    """Return the line that introduces a frame: which, when, and what each number is."""
    first = picked.detections[0]
    when = ""
    if first.detected_at is not None:
        when = f", {first.detected_at.astimezone(tz).strftime('%H:%M:%S')}"
    seen = ", ".join(
        f"#{number} {prompt_label(d.label)} {round(min(max(d.confidence, 0.0), 1.0) * 100)}%"
        for number, d in numbers
    )
    return f"Frame {index} of {count} ({picked.why}{when}): {seen or 'no boxes'}"


async def incident_frames(
    detections: Sequence[Detection],
    *,
    limit: int,
    long_side: int,
    tz: tzinfo,
    run_blocking: BlockingRunner,
    camera_root: str | None = None,
    ffmpeg: str = "ffmpeg",
) -> tuple[PromptImage, ...]:
    """Return the incident's frames for a vision model (fewer when some cannot be read).

    Uploads are read only where they really lie inside camera_root; a clip's frame is decoded
    by ffmpeg. A frame that cannot be read or decoded is left out with a debug line: the
    verdict never waits on a picture.
    """
    picked = pick_frames(detections, limit)
    drawn: list[tuple[PickedFrame, list[tuple[int, Detection]], bytes, str]] = []
    number = 0
    for picture in picked:
        numbers = []
        for detection in picture.detections:
            number += 1
            numbers.append((number, detection))
        first = picture.detections[0]
        try:
            if first.frame_time is not None:
                source = await upload_source(first.path, camera_root, run_blocking)
                content = await extract_frame(source, first.frame_time, ffmpeg=ffmpeg)
            elif camera_root is not None:
                content = await run_blocking(read_upload, camera_root, first.path)
            else:
                content = await run_blocking(read_file, first.path)
            jpeg, digest = await run_blocking(_rendered, content, numbers, long_side)
        except (OSError, VideoError, AnnotateError) as err:
            _LOGGER.debug("No picture of %s for the model: %s", first.path, err)
            continue
        drawn.append((picture, numbers, jpeg, digest))
    return tuple(
        PromptImage(
            jpeg=jpeg,
            caption=caption(index, len(drawn), picture, numbers, tz),
            rank=RANKS[picture.why],
            frame=frame_id(picture.detections[0]),
            digest=digest,
        )
        for index, (picture, numbers, jpeg, digest) in enumerate(drawn, start=1)
    )


def frame_id(detection: Detection) -> str:
    """Return how the audit names a detection's frame: its upload, and the time in a clip."""
    media = "?" if detection.media_id is None else str(detection.media_id)
    if detection.frame_time is None:
        return media
    return f"{media}@{round(detection.frame_time, 2):g}"


def _rendered(
    content: bytes, numbers: Sequence[tuple[int, Detection]], long_side: int
) -> tuple[bytes, str]:
    """Return the frame drawn for the model and its SHA-256 (in the executor: hashing)."""
    jpeg = render_frame(content, numbers, long_side)
    return jpeg, hashlib.sha256(jpeg).hexdigest()
