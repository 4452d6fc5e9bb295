"""An incident's clip: everything its camera sent over its span, with the boxes drawn.

Either the camera's video cut to the incident with each detection's box drawn on its frames, or
a clip of stills: every image upload over the span (those where nothing was seen included), the
boxes drawn, each shown for the time until the next one, sped up when the incident was long. It
is separate from eventmedia (one event's own frames, made as soon as it is stored) because it
is made once, when the incident closes, from all of the camera's uploads, and its choices (which
video, which stills, how long each) are its own.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
import itertools
import logging
import math
from pathlib import Path
import secrets
import shutil
from typing import Final

from .annotate import AnnotateError, annotate, color_for
from .clip_stills import FRAME_SECONDS
from .clips import ClipError, TimedBox, make_clip
from .derived import DerivedMedia
from .event_uploads import read_event_upload, upload_source
from .models import Detection, MediaType, SecurityEvent
from .storage import BlockingRunner

_LOGGER = logging.getLogger(__name__)

INCIDENT_FRAMES: Final = 150
"""Stills in an incident's clip at most; more uploads are sampled evenly, those with detections
kept first. Drawing one takes about 30 ms of the executor (a 1080p frame), so 150 is a few
seconds of work and a few dozen MB of temporary stills, and at the 0.6 s a viewer needs to take
a picture in, 150 fill CLIP_TARGET: more would only flash by."""
CLIP_TARGET: Final = 90.0
"""Seconds a long incident's clip of stills is sped up to last, about (see _durations)."""
MIN_STILL: Final = 0.2
"""Least seconds a still is shown: one frame of the clip, still seen."""
MAX_STILL: Final = 3.0
"""Most seconds a still is shown: a camera quiet for a minute is not a minute of one picture."""
BOX_SECONDS: Final = 1.0
"""Seconds a detection's box stays on a cut video (less when the next detection comes sooner)."""
MAX_BOXES: Final = 300
"""Boxes drawn on a cut video at most, the most confident: each is a filter of about 170
characters in one ffmpeg argument, which Linux limits to 128 KiB."""
INCIDENT_CLIP_TIMEOUT: Final = 300.0
"""Seconds ffmpeg may take on an incident's clip: up to INCIDENT_FRAMES stills, or minutes of
the camera's video re-encoded, on a small machine."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SpanUpload:
    """An upload of the camera received while an incident was open, whatever was seen in it."""

    path: str
    received_at: datetime
    media_type: MediaType


@dataclass(frozen=True, kw_only=True, slots=True)
class _Shot:
    """An image upload in an incident's clip: where it is, when it came, what was seen in it."""

    path: str
    at: datetime
    detections: tuple[Detection, ...]


async def render_incident_clip(
    event: SecurityEvent,
    detections: Sequence[Detection],
    uploads: Sequence[SpanUpload],
    media: DerivedMedia,
    *,
    run_blocking: BlockingRunner,
    ffmpeg: str = "ffmpeg",
    camera_root: str | None = None,
) -> Path | None:
    """Write the clip of a whole incident to the event's clip path; None when none was made.

    uploads: every upload of the camera received over the incident's span, in time order,
    those in which nothing was seen included. When a detection comes from a video, the video
    with the most detections (the earliest of equals) is cut from its first to its last
    detection's frame, CLIP_MARGIN added either side, with each detection's box drawn from its
    frame's time for BOX_SECONDS or until that video's next detection. Otherwise the image
    uploads make the clip: one still for each (at most INCIDENT_FRAMES), the boxes of its
    detections drawn, shown for the time until the next one (see _durations); fewer than two
    stills make no clip. A missing or unreadable upload is left out; a clip ffmpeg cannot make
    is logged and None. With camera_root, uploads are read only where they lie inside it.
    """
    target = media.clip_path(event.camera_id, event.event_id, event.started_at)
    try:
        if any(d.frame_time is not None for d in detections):
            cut = await _incident_cut(
                event,
                detections,
                target,
                run_blocking=run_blocking,
                ffmpeg=ffmpeg,
                camera_root=camera_root,
            )
            if cut is not None:
                return cut
        return await _incident_stills(
            event,
            detections,
            uploads,
            media,
            target,
            run_blocking=run_blocking,
            ffmpeg=ffmpeg,
            camera_root=camera_root,
        )
    except (ClipError, OSError) as err:  # OSError: the stills could not be written
        _LOGGER.warning("No clip for event %s: %s", event.event_id, err)
        return None


async def _incident_cut(
    event: SecurityEvent,
    detections: Sequence[Detection],
    target: Path,
    *,
    run_blocking: BlockingRunner,
    ffmpeg: str,
    camera_root: str | None,
) -> Path | None:
    """Cut the incident's clip from its busiest video, boxes drawn; None when it is gone."""
    found: dict[str, list[Detection]] = {}
    for detection in detections:
        at = detection.frame_time
        if at is not None and math.isfinite(at) and at >= 0:
            found.setdefault(detection.path, []).append(detection)
    if not found:
        return None
    path, chosen = max(found.items(), key=lambda item: len(item[1]))  # the first of equals
    try:
        source = await upload_source(path, camera_root, run_blocking)
    except OSError as err:
        _LOGGER.debug("No video %s for event %s: %s", path, event.event_id, err)
        return None
    times = sorted({d.frame_time or 0.0 for d in chosen})
    return await make_clip(
        target,
        source=source,
        start=times[0],
        end=times[-1],
        boxes=_timed_boxes(chosen, times),
        ffmpeg=ffmpeg,
        time_limit=INCIDENT_CLIP_TIMEOUT,
        run_blocking=run_blocking,
    )


def _timed_boxes(detections: Sequence[Detection], times: list[float]) -> list[TimedBox]:
    """Return each detection's box as fractions of its frame, shown until the next frame's time.

    Boxes are clipped to the frame; a box without a frame size, empty or not finite is left out,
    and only the MAX_BOXES most confident are kept.
    """
    until = {
        at: min(at + BOX_SECONDS, after)
        for at, after in zip(times, [*times[1:], math.inf], strict=True)
    }
    boxes = []
    for detection in sorted(detections, key=lambda d: -d.confidence)[:MAX_BOXES]:
        width, height = detection.frame_width, detection.frame_height
        box = detection.bbox
        if width <= 0 or height <= 0 or not all(map(math.isfinite, box.as_list())):
            continue
        left, top = max(0.0, box.x), max(0.0, box.y)
        right, bottom = min(float(width), box.x + box.w), min(float(height), box.y + box.h)
        if right <= left or bottom <= top:
            continue
        at = detection.frame_time or 0.0
        boxes.append(
            TimedBox(
                left=left / width,
                top=top / height,
                width=(right - left) / width,
                height=(bottom - top) / height,
                start=at,
                end=until[at],
                color=color_for(detection.label),
            )
        )
    return boxes


async def _incident_stills(
    event: SecurityEvent,
    detections: Sequence[Detection],
    uploads: Sequence[SpanUpload],
    media: DerivedMedia,
    target: Path,
    *,
    run_blocking: BlockingRunner,
    ffmpeg: str,
    camera_root: str | None,
) -> Path | None:
    """Make the incident's clip of its image uploads, boxes drawn; None for fewer than 2 stills.

    The stills are drawn one at a time into a hidden folder in the event's folder, which is
    removed afterwards whatever happens.
    """
    shots = _choose(_shots(event, detections, uploads), INCIDENT_FRAMES)
    if len(shots) < 2:
        _LOGGER.debug("No clip for event %s: %d picture(s)", event.event_id, len(shots))
        return None
    folder = target.parent / f".stills-{secrets.token_hex(6)}"
    try:
        drawn: list[tuple[_Shot, Path]] = []
        for shot in shots:
            still = folder / f"{len(drawn):04d}.jpg"
            if await run_blocking(_draw_still, media, still, shot, camera_root, event.event_id):
                drawn.append((shot, still))
        if len(drawn) < 2:
            _LOGGER.debug("No clip for event %s: %d picture(s)", event.event_id, len(drawn))
            return None
        return await make_clip(
            target,
            frames=[still for _shot, still in drawn],
            durations=_durations([shot.at for shot, _still in drawn]),
            ffmpeg=ffmpeg,
            time_limit=INCIDENT_CLIP_TIMEOUT,
            run_blocking=run_blocking,
        )
    finally:  # even when cancelled: no stills left behind
        await asyncio.shield(run_blocking(_remove_folder, folder))


def _shots(
    event: SecurityEvent, detections: Sequence[Detection], uploads: Sequence[SpanUpload]
) -> list[_Shot]:
    """Return the incident's image uploads in time order, each with its detections.

    An image with detections that is missing from uploads is added at its detection's time. A
    path uploaded twice holds only its last picture, so it is shown once, at its last time.
    """
    seen: dict[str, list[Detection]] = {}
    for detection in detections:
        if detection.frame_time is None:
            seen.setdefault(detection.path, []).append(detection)
    times: dict[str, datetime] = {}
    for upload in uploads:
        if upload.media_type is MediaType.IMAGE:
            times.pop(upload.path, None)  # moved to its last time
            times[upload.path] = upload.received_at
    for path, found in seen.items():
        if path not in times:
            times[path] = found[0].detected_at or event.started_at
    ordered = sorted(times.items(), key=lambda item: item[1])  # stable: equal times keep order
    return [_Shot(path=path, at=at, detections=tuple(seen.get(path, ()))) for path, at in ordered]


def _choose(shots: list[_Shot], most: int) -> list[_Shot]:
    """Return at most `most` shots, in time order: those with detections first, spread evenly."""
    if len(shots) <= most:
        return shots
    seen = [shot for shot in shots if shot.detections]
    if len(seen) >= most:
        return _spread(seen, most)
    kept = {id(shot) for shot in seen}
    kept.update(
        id(shot) for shot in _spread([s for s in shots if not s.detections], most - len(seen))
    )
    return [shot for shot in shots if id(shot) in kept]


def _spread[T](items: list[T], count: int) -> list[T]:
    """Return count of items spread evenly over them, the first and the last included."""
    if count >= len(items):
        return items
    if count == 1:
        return [items[len(items) // 2]]
    step = (len(items) - 1) / (count - 1)
    return [items[int(index * step + 0.5)] for index in range(count)]


def _durations(times: list[datetime]) -> list[float]:
    """Return how long each still is shown: its real time until the next one, sped up.

    An incident longer than CLIP_TARGET is sped up to last about that long (a ten-minute visit
    plays in a minute and a half), a shorter one plays in real time; each still is then shown
    between MIN_STILL and MAX_STILL seconds, and the last one for a second. So uploads every 6 s
    over ten minutes show about 1 s each, and three uploads 10 s apart 3 s, 3 s and 1 s.
    """
    span = (times[-1] - times[0]).total_seconds()
    speed = max(1.0, span / CLIP_TARGET)
    gaps = [(after - before).total_seconds() / speed for before, after in itertools.pairwise(times)]
    return [*(min(MAX_STILL, max(MIN_STILL, gap)) for gap in gaps), FRAME_SECONDS]


def _draw_still(
    media: DerivedMedia, still: Path, shot: _Shot, camera_root: str | None, event_id: str
) -> bool:
    """Draw the shot's boxes on its upload and write it to still; blocking.

    Return False (logged) when the upload is gone or is no readable picture; raises OSError when
    the still cannot be written.
    """
    try:
        image = read_event_upload(camera_root, shot.path)
        frame = annotate(image, shot.detections)
    except (OSError, AnnotateError) as err:
        _LOGGER.debug("No picture of %s for event %s: %s", shot.path, event_id, err)
        return False
    media.write_file(still, frame.jpeg)
    return True


def _remove_folder(folder: Path) -> None:
    """Remove the temporary stills' folder with what is in it, if it was made; blocking."""
    shutil.rmtree(folder, ignore_errors=True)
