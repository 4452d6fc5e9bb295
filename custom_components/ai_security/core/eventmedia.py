"""An event's pictures: its annotated key frame, a frame and thumbnail per detection, its clip.

Made once the event is stored, from the uploads its detections came from (a video's key frame is
decoded again by ffmpeg). Uploads are never modified: everything lands in the derived-media
folder (derived.py), where the media browser and the image entity find it. A missing upload (the
camera or a clean-up deleted it) costs only its own pictures, never the event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
import logging
from pathlib import Path
from typing import Final

from .annotate import AnnotateError, annotate
from .clips import ClipError, make_clip
from .derived import DerivedMedia
from .models import Detection, SecurityEvent
from .storage import BlockingRunner
from .uploads import read_upload, real_upload_path
from .video import VideoError, extract_frame

_LOGGER = logging.getLogger(__name__)

MAX_FRAMES: Final = 8
"""Frames annotated per event (the most confident ones): a long busy batch stays cheap."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMedia:
    """What was made for an event; None where it could not be."""

    key_frame: Path | None
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
    camera_root: str | None = None,
    on_key_frame: Callable[[Path], None] | None = None,
) -> EventMedia:
    """Write the event's key frame, per-detection frames and thumbnails, and its clip.

    Pillow and file work run through run_blocking (the executor); ffmpeg runs as a subprocess.
    With camera_root, an upload is read only where it really lies inside it. on_key_frame is
    called as soon as the key frame is written, before the other frames and the clip, so the
    event can be announced with its own picture without waiting for the rest.
    """
    written: list[tuple[float, Path]] = []
    """(time of the frame, its annotated file) for the clip, in time order."""
    key_frame: Path | None = None
    videos: list[Detection] = []
    for index, group in enumerate(_frames(detections)):
        first = group[0]
        try:
            if first.frame_time is not None:
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
        if key_frame is None:
            key_frame = media.key_frame_path(event.camera_id, event.event_id, event.started_at)
            paths.append((key_frame, frame.jpeg))
        for path, data in paths:
            await run_blocking(media.write_file, path, data)
        if key_frame is not None and not written and on_key_frame is not None:
            on_key_frame(key_frame)
        detected = first.detected_at.timestamp() if first.detected_at is not None else 0.0
        written.append((detected + (first.frame_time or 0.0), paths[0][0]))
    clip_path: Path | None = None
    if clip and written:
        clip_path = await _clip(
            event, media, written, videos=videos, ffmpeg=ffmpeg, run_blocking=run_blocking
        )
    return EventMedia(key_frame=key_frame, clip=clip_path, frames=len(written))


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
