"""An event's pictures: its annotated key frame, a frame and thumbnail per detection, its clip.

Made once the event is stored, from the uploads its detections came from (a video's key frame is
decoded again by ffmpeg). Uploads are never modified: everything lands in the derived-media
folder (derived.py), where the media browser and the image entity find it. A missing upload (the
camera or a clean-up deleted it) costs only its own pictures, never the event. The clip of a
whole incident, made when it closes from all of its camera's uploads, is incident_clip's.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
import logging
from pathlib import Path
from typing import Final

from .annotate import (
    AnnotateError,
    KeyFrameCanvas,
    annotate,
    annotate_key_frame,
    draw_key_frame,
)
from .clips import ClipError, make_clip
from .derived import DerivedMedia
from .event_uploads import read_file, upload_source
from .incident_clip import SpanUpload, render_incident_clip
from .models import Detection, SecurityEvent
from .storage import BlockingRunner
from .uploads import read_upload
from .video import VideoError, extract_frame

__all__ = ["EventMedia", "SpanUpload", "render_event_media", "render_incident_clip"]
"""The incident's clip is incident_clip's; named here too because the announcer asks for both
kinds of pictures of an event."""

_LOGGER = logging.getLogger(__name__)

MAX_FRAMES: Final = 8
"""Frames annotated per event (the most confident ones): a long busy batch stays cheap."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMedia:
    """What was made for an event; None where it could not be."""

    key_frame: Path | None
    """None also when it was not asked for (render_event_media's key_frame=False)."""
    clip: Path | None
    frames: int
    """Annotated frames written (one per distinct upload, or per video frame)."""


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
                source = await upload_source(first.path, camera_root, run_blocking)
                videos.append(replace(first, path=source))
                image = await extract_frame(source, first.frame_time, ffmpeg=ffmpeg)
            elif camera_root is not None:  # checked where it was opened: no window for a link
                image = await run_blocking(read_upload, camera_root, first.path)
            else:
                image = await run_blocking(read_file, first.path)
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
