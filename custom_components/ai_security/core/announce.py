"""The media stage: an event's pictures drawn, and the event announced with its own.

An automation triggered by a new incident (a phone notification) must find that incident's
annotated picture, not the previous one's: so its key frame is drawn first (event_media), then
the incident is announced (event), then its other frames follow. When it closes, its frames are
drawn again and its clip made over the whole visit. Pictures run as tasks of their own: a slow
ffmpeg never holds up a detection or a verdict, and stop() cancels what is left.
"""

import asyncio
from dataclasses import replace
from datetime import datetime
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .annotate import KeyFrameCanvas
from .context import BackgroundTasks, StageContext
from .derived import DerivedMedia
from .eventmedia import EventMedia, SpanUpload, render_event_media, render_incident_clip
from .models import Camera, Detection, MediaType, SecurityEvent
from .storage import DetectionRow, MediaRow
from .uploads import read_upload, real_upload_path, shown
from .video import VideoError, extract_frame

_LOGGER = logging.getLogger(__name__)

type Picture = tuple[str, float | None, bytes]
"""An image in memory: its upload's path, the frame's time in a clip (None for an image), bytes."""


class Announcer:
    """Draws events' pictures in tasks of their own and announces each event with its own."""

    def __init__(self, ctx: StageContext) -> None:
        """Use the pipeline's shared context; nothing runs until an event is announced."""
        self._ctx = ctx
        self.tasks = BackgroundTasks()
        self._announcing: dict[str, asyncio.Event] = {}
        """Events stored whose key frame is being drawn: set once each is announced, so an
        update of one never reaches the host before the event itself."""

    async def announced(self, event_id: str) -> None:
        """Return once event_id is announced (at once when it is not being drawn)."""
        if (announcing := self._announcing.get(event_id)) is not None:
            await announcing.wait()

    def announce(
        self,
        camera: Camera,
        event: SecurityEvent,
        detections: list[Detection],
        picture: Picture | None = None,
        canvas: asyncio.Future[KeyFrameCanvas] | None = None,
    ) -> None:
        """Announce a stored event with its own picture: the key frame first, then the event.

        picture is the upload the detector was just sent, canvas its key frame being decoded.
        When no picture can be made the event is announced all the same.
        """
        ctx, media = self._ctx, self._ctx.media
        if media is None or not ctx.running:
            if canvas is not None:
                canvas.cancel()
            ctx.callbacks.event(camera, event)
            return
        announced = False
        done = self._announcing[event.event_id] = asyncio.Event()

        def announce() -> None:
            nonlocal announced
            if announced:
                return
            announced = True
            done.set()
            self._announcing.pop(event.event_id, None)
            ctx.callbacks.event(camera, event)

        def first_picture(key_frame: Path) -> None:
            try:
                ctx.callbacks.event_media(
                    camera, event, EventMedia(key_frame=key_frame, clip=None, frames=1)
                )
            finally:
                announce()

        async def render() -> None:
            try:
                made = await self._render(
                    media,
                    event,
                    detections,
                    on_key_frame=first_picture,
                    # An incident's clip covers all of it: made when it closes.
                    clip=not event.ongoing,
                    pictures=None if picture is None else {picture[:2]: picture[2]},
                    canvases=None if picture is None or canvas is None else {picture[:2]: canvas},
                )
            except Exception:
                _LOGGER.exception("Making the pictures of event %s failed", event.event_id)
                made = None
            finally:
                announce()  # no picture (or stopped while drawing): never left unannounced
            if made is not None and (made.key_frame is not None or made.clip is not None):
                ctx.callbacks.event_media(camera, event, made)

        self.tasks.spawn(render(), f"ai_security media {event.event_id}")

    def finish(
        self, camera: Camera, event: SecurityEvent, detections: list[Detection], batch_key: str
    ) -> None:
        """Draw a closed incident's other frames and make its clip over the whole visit.

        The key frame stays as it is: it is the picture the phone already shows.
        """
        ctx, media = self._ctx, self._ctx.media
        if media is None or not ctx.running:
            return

        async def render() -> None:
            try:
                uploads = await ctx.db.run(
                    lambda s: _uploads_between(s, camera.camera_id, batch_key, event.ended_at)
                )
                made = await self._render(media, event, detections, clip=False, key_frame=False)
                clip = await render_incident_clip(
                    event,
                    detections,
                    uploads,
                    media,
                    run_blocking=ctx.run_blocking,
                    ffmpeg=ctx.config.ffmpeg,
                    camera_root=ctx.config.camera_root,
                )
            except Exception:
                _LOGGER.exception("Making the clip of event %s failed", event.event_id)
                return
            if clip is not None:
                ctx.callbacks.event_media(camera, event, replace(made, clip=clip))

        self.tasks.spawn(render(), f"ai_security clip {event.event_id}")

    async def _render(
        self,
        media: DerivedMedia,
        event: SecurityEvent,
        detections: list[Detection],
        **how: Any,
    ) -> EventMedia:
        """Make an event's pictures with the pipeline's ffmpeg, executor and camera root."""
        ctx = self._ctx
        return await render_event_media(
            event,
            detections,
            media,
            run_blocking=ctx.run_blocking,
            ffmpeg=ctx.config.ffmpeg,
            camera_root=ctx.config.camera_root,
            **how,
        )

    async def read_frame(self, path: str, frame_time: float | None) -> bytes | None:
        """Return an upload's picture (a clip's frame at frame_time); None when gone or refused.

        For the cameras' pictures: the path comes from the database, and like every other
        route it is read only when it lies inside the camera root.
        """
        ctx = self._ctx
        root = ctx.config.camera_root
        try:
            if frame_time is None:
                content: bytes = await ctx.run_blocking(read_upload, root, path)
                return content
            real = await ctx.run_blocking(real_upload_path, root, path)
            return await extract_frame(real, frame_time, ffmpeg=ctx.config.ffmpeg)
        except FileNotFoundError:
            return None
        except (OSError, VideoError) as err:
            _LOGGER.debug("Cannot read %s: %s", shown(path), err)
            return None

    async def wait(self) -> None:
        """Return once the pictures of every announced event are made (tests and benchmarks)."""
        await self.tasks.wait()

    async def stop(self) -> None:
        """Cancel the pictures still being made; the events stay stored."""
        await self.tasks.cancel()


def _uploads_between(
    session: Session, camera_id: str, batch_key: str, end: datetime
) -> list[SpanUpload]:
    """Return the uploads of an incident's clip, in time order.

    From the first upload it detected something in to its end: its own uploads, and those of
    the camera in which nothing was seen (the clip shows the whole visit). An upload whose
    detections belong to another incident (the previous visit, still being detected) is not
    this one's.
    """
    first = session.scalar(
        select(func.min(MediaRow.received_at))
        .join(DetectionRow, DetectionRow.media_id == MediaRow.media_id)
        .where(DetectionRow.batch_key == batch_key)
    )
    if first is None:
        return []
    others = (
        select(DetectionRow.detection_id)
        .where(
            DetectionRow.media_id == MediaRow.media_id,
            DetectionRow.batch_key.is_not(None),
            DetectionRow.batch_key != batch_key,
        )
        .exists()
    )
    rows = session.execute(
        select(MediaRow.path, MediaRow.received_at, MediaRow.media_type)
        .where(
            MediaRow.camera_id == camera_id,
            MediaRow.received_at >= first,
            MediaRow.received_at <= end,
            ~others,
        )
        .order_by(MediaRow.received_at, MediaRow.media_id)
    ).all()
    return [
        SpanUpload(path=path, received_at=received_at, media_type=MediaType(media_type))
        for path, received_at, media_type in rows
    ]
