"""An event's pictures: its annotated key frame, a frame and thumbnail per detection, its clips.

Made once the event is stored, from the uploads its detections came from (a video's key frame is
decoded again by ffmpeg). An incident's clip (render_incident_clip) covers all of it: every
upload of the camera over its span with the boxes drawn, or the camera's video cut to it with
the boxes drawn on its frames. Uploads are never modified: everything lands in the derived-media
folder (derived.py), where the media browser and the image entity find it. A missing upload (the
camera or a clean-up deleted it) costs only its own pictures, never the event.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
import itertools
import logging
import math
from pathlib import Path
import secrets
import shutil
from typing import Final

from .annotate import (
    AnnotateError,
    KeyFrameCanvas,
    annotate,
    annotate_key_frame,
    color_for,
    draw_key_frame,
)
from .clips import FRAME_SECONDS, ClipError, TimedBox, make_clip
from .derived import DerivedMedia
from .models import Detection, MediaType, SecurityEvent
from .storage import BlockingRunner
from .uploads import read_upload, real_upload_path
from .video import VideoError, extract_frame

_LOGGER = logging.getLogger(__name__)

MAX_FRAMES: Final = 8
"""Frames annotated per event (the most confident ones): a long busy batch stays cheap."""

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


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMedia:
    """What was made for an event; None where it could not be."""

    key_frame: Path | None
    """None also when it was not asked for (render_event_media's key_frame=False)."""
    clip: Path | None
    frames: int
    """Annotated frames written (one per distinct upload, or per video frame)."""


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


async def _source(path: str, camera_root: str | None, run_blocking: BlockingRunner) -> str:
    """Return the upload's real path once it is known to lie inside the camera root.

    Paths come from the database; a link put on the way since (`Cam/sub -> /etc`) must not
    carry the pictures outside. Without a camera root (tests of this module alone) the path is
    taken as it is.
    """
    if camera_root is None:
        return path
    real: str = await run_blocking(real_upload_path, camera_root, path)
    return real


def _frames(detections: Sequence[Detection]) -> list[list[Detection]]:
    """Group detections by the frame they were found in, most confident frame first."""
    groups: dict[tuple[str, float | None], list[Detection]] = {}
    for detection in detections:
        groups.setdefault((detection.path, detection.frame_time), []).append(detection)
    ordered = sorted(groups.values(), key=lambda group: -max(d.confidence for d in group))
    return ordered[:MAX_FRAMES]


async def render_event_media(
    event: SecurityEvent,
    detections: Sequence[Detection],
    media: DerivedMedia,
    *,
    run_blocking: BlockingRunner,
    ffmpeg: str = "ffmpeg",
    clip: bool = True,
    key_frame: bool = True,
    camera_root: str | None = None,
    on_key_frame: Callable[[Path], None] | None = None,
    pictures: Mapping[tuple[str, float | None], bytes] | None = None,
    canvases: Mapping[tuple[str, float | None], Awaitable[KeyFrameCanvas]] | None = None,
) -> EventMedia:
    """Write the event's key frame, per-detection frames and thumbnails, and its clip.

    pictures holds images already in memory by (upload path, frame time): the upload the
    detector was just sent (or the clip's frame it was sent), so the picture that announces an
    incident is drawn without reading the file, or running ffmpeg, again. canvases holds, by the
    same key, a picture's key frame already decoded or being decoded (decode_key_frame, started
    while the detector looked at it): the key frame is then only drawn and encoded.

    Pillow and file work run through run_blocking (the executor); ffmpeg runs as a subprocess.
    With camera_root, an upload is read only where it really lies inside it. on_key_frame is
    called as soon as the key frame is written, before the other frames and the clip, so the
    event can be announced with its own picture without waiting for the rest. With key_frame
    False the key frame is left as it is (not written, on_key_frame not called): an incident's
    picture, drawn when it opened, stays the one a phone already shows when its other frames
    are drawn again at its close.
    """
    written: list[tuple[float, Path]] = []
    """(time of the frame, its annotated file) for the clip, in time order."""
    key_path: Path | None = None
    videos: list[Detection] = []
    for index, group in enumerate(_frames(detections)):
        first = group[0]
        known = pictures.get((first.path, first.frame_time)) if pictures else None
        try:
            if known is not None and not clip:
                image = known
            elif first.frame_time is not None:
                source = await _source(first.path, camera_root, run_blocking)
                videos.append(replace(first, path=source))
                image = await extract_frame(source, first.frame_time, ffmpeg=ffmpeg)
            elif camera_root is not None:  # checked where it was opened: no window for a link
                image = await run_blocking(read_upload, camera_root, first.path)
            else:
                image = await run_blocking(_read, first.path)
        except (OSError, VideoError) as err:
            _LOGGER.debug("No picture of %s for event %s: %s", first.path, event.event_id, err)
            continue
        if key_frame and key_path is None:
            # The phone's picture first, drawn small, then the full-size frames.
            canvas = canvases.get((first.path, first.frame_time)) if canvases else None
            try:
                key_path = await _key_frame(
                    event, media, image, group, canvas=canvas, run_blocking=run_blocking
                )
            except AnnotateError as err:
                _LOGGER.warning(
                    "Cannot annotate %s for event %s: %s", first.path, event.event_id, err
                )
                continue
            if on_key_frame is not None:
                on_key_frame(key_path)
        try:
            frame = await run_blocking(annotate, image, group)
        except AnnotateError as err:
            _LOGGER.warning("Cannot annotate %s for event %s: %s", first.path, event.event_id, err)
            continue
        ids = [d.detection_id for d in group if d.detection_id is not None]
        name = ids[0] if ids else index
        paths = [
            (media.frame_path(event.camera_id, event.event_id, event.started_at, name), frame.jpeg)
        ]
        paths.extend(
            (
                media.thumbnail_path(event.camera_id, event.event_id, event.started_at, ident),
                frame.thumbnail,
            )
            for ident in ids
        )
        await run_blocking(_write_files, media, paths)
        detected = first.detected_at.timestamp() if first.detected_at is not None else 0.0
        written.append((detected + (first.frame_time or 0.0), paths[0][0]))
    clip_path: Path | None = None
    if clip and written:
        clip_path = await _clip(
            event, media, written, videos=videos, ffmpeg=ffmpeg, run_blocking=run_blocking
        )
    return EventMedia(key_frame=key_path, clip=clip_path, frames=len(written))


async def _key_frame(
    event: SecurityEvent,
    media: DerivedMedia,
    image: bytes,
    group: Sequence[Detection],
    *,
    canvas: Awaitable[KeyFrameCanvas] | None,
    run_blocking: BlockingRunner,
) -> Path:
    """Write the event's key frame: drawn on its decoded canvas when there is one."""
    path = media.key_frame_path(event.camera_id, event.event_id, event.started_at)
    if canvas is not None:
        written: Path = await run_blocking(_write_drawn_key_frame, media, path, await canvas, group)
    else:
        written = await run_blocking(_write_key_frame, media, path, image, group)
    return written


def _write_key_frame(
    media: DerivedMedia, path: Path, image: bytes, group: Sequence[Detection]
) -> Path:
    """Draw the key frame (annotate_key_frame) and write it; blocking, one executor job."""
    return media.write_file(path, annotate_key_frame(image, group).jpeg)


def _write_drawn_key_frame(
    media: DerivedMedia, path: Path, canvas: KeyFrameCanvas, group: Sequence[Detection]
) -> Path:
    """Draw the key frame on its decoded picture and write it; blocking, one executor job."""
    return media.write_file(path, draw_key_frame(canvas, group).jpeg)


def _write_files(media: DerivedMedia, paths: Sequence[tuple[Path, bytes]]) -> None:
    """Write a frame and its thumbnails; blocking, one executor job for them all."""
    for path, data in paths:
        media.write_file(path, data)


async def _clip(
    event: SecurityEvent,
    media: DerivedMedia,
    written: list[tuple[float, Path]],
    *,
    videos: list[Detection],
    ffmpeg: str,
    run_blocking: BlockingRunner,
) -> Path | None:
    """Cut the clip from the source video (2 s around the frames), or make it of the frames."""
    target = media.clip_path(event.camera_id, event.event_id, event.started_at)
    try:
        if videos:
            source = videos[0].path
            times = [d.frame_time or 0.0 for d in videos if d.path == source]
            return await make_clip(
                target,
                source=source,
                start=min(times),
                end=max(times),
                ffmpeg=ffmpeg,
                run_blocking=run_blocking,
            )
        if len(written) < 2:
            return None  # one still is the key frame already; a one-frame clip adds nothing
        frames = [path for _at, path in sorted(written)]
        return await make_clip(target, frames=frames, ffmpeg=ffmpeg, run_blocking=run_blocking)
    except ClipError as err:
        _LOGGER.warning("No clip for event %s: %s", event.event_id, err)
        return None


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
        source = await _source(path, camera_root, run_blocking)
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
        image = read_upload(camera_root, shot.path) if camera_root is not None else _read(shot.path)
        frame = annotate(image, shot.detections)
    except (OSError, AnnotateError) as err:
        _LOGGER.debug("No picture of %s for event %s: %s", shot.path, event_id, err)
        return False
    media.write_file(still, frame.jpeg)
    return True


def _remove_folder(folder: Path) -> None:
    """Remove the temporary stills' folder with what is in it, if it was made; blocking."""
    shutil.rmtree(folder, ignore_errors=True)
