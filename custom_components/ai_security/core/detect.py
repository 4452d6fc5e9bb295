"""The detect stage: a detect job's upload shown to the detector, its answer to the incidents.

detect job -> the picture (the bytes kept since intake, the file read again, or a clip's key
frame by ffmpeg) -> the detector pool (least in flight, a breaker each) -> one box per object
-> incidents.py stores them. For a camera with no incident open, the key frame's decoding starts
while the detector looks: when a detection opens an incident, its picture is nearly drawn.
"""

import asyncio
from collections.abc import Callable
from dataclasses import replace
import logging
import os
from typing import Any

from .annotate import KeyFrameCanvas, decode_key_frame
from .batcher import Batcher
from .context import StageContext
from .detector import DetectorClient, DetectorError, DetectorRejectedError
from .incidents import Detected, IncidentStage
from .jobs import Job, JobResult, PermanentJobError
from .models import MediaType
from .monitor import HealthMonitor
from .nms import one_box_per_object
from .payloads import DetectPayload, payload_of
from .resilience import CircuitOpenError, CircuitState
from .uploads import OutsideRootError, read_upload, real_upload_path, shown
from .video import NoVideoStreamError, VideoError, extract_frame, key_frame_time, probe_video

_LOGGER = logging.getLogger(__name__)


class DetectStage:
    """Handles detect jobs: the picture to the detector, the answer to the incidents stage."""

    def __init__(
        self,
        ctx: StageContext,
        *,
        detector: DetectorClient,
        incidents: IncidentStage,
        batcher: Batcher,
        health: HealthMonitor,
        take_content: Callable[[int], bytes | None],
    ) -> None:
        """Use the shared context; take_content hands over an image's bytes kept at intake."""
        self._ctx = ctx
        self._detector = detector
        self._incidents = incidents
        self._batcher = batcher
        self._health = health
        self._take_content = take_content
        self._paused: set[str] = set()
        self.images_processed = 0

    def set_paused(self, camera_id: str, paused: bool) -> None:
        """Pause or resume detection for one camera, from its next job on (see Pipeline)."""
        if paused:
            self._paused.add(camera_id)
        else:
            self._paused.discard(camera_id)

    def available(self) -> bool:
        """Return whether a detector endpoint may be asked (its breaker lets a request by)."""
        return any(breaker.would_allow() for breaker in self._detector.breakers.values())

    def is_outage(self, error: BaseException) -> bool:
        """Return whether a failure is the detector's outage: no endpoint is considered up."""
        if isinstance(error, CircuitOpenError):
            return True
        if isinstance(error, DetectorError) and error.unreachable:
            # No connection at all (refused, no route): the server is down, not the image bad.
            # A time-out is not: an image that always times out must end as a dead job.
            return True
        return isinstance(error, DetectorError) and not any(
            breaker.state is CircuitState.CLOSED for breaker in self._detector.breakers.values()
        )

    async def handle(self, job: Job) -> JobResult:
        """Detect objects in a job's upload; return the incidents stage's result to commit."""
        payload = payload_of(DetectPayload, job)
        camera_id, path = payload.camera_id, payload.path
        width, height = payload.width, payload.height
        frame_time: float | None = None
        if camera_id in self._paused:
            # The upload stays registered (nothing is lost, its content stays known); it is
            # only not looked at: no detector request, no detections, no event.
            self._take_content(payload.media_id)
            _LOGGER.debug("Not detecting %s: detection is paused for its camera", shown(path))
            return JobResult()
        if payload.media_type is MediaType.VIDEO:
            frame = await self._video_frame(path)
            if frame is None:
                return JobResult()
            image, frame_time, width, height = frame
            filename = os.path.splitext(os.path.basename(path))[0] + ".jpg"
        else:
            image = await self._image_content(payload.media_id, path)
            filename = os.path.basename(path)
        canvas = self._decode_key_frame_early(camera_id, image) if job.attempts == 0 else None
        try:
            result = await self._detector.detect(
                image, filename=filename, width=width, height=height
            )
        except BaseException as err:
            if canvas is not None:
                canvas.cancel()
            if isinstance(err, DetectorRejectedError):
                # The detector answered and refused this image (413 too large, 400): a retry
                # cannot change its mind.
                raise PermanentJobError(str(err)) from err
            raise
        self.images_processed += 1
        self._health.record_detector(result.endpoint, result.latency_ms)
        # One object, one box: overlapping boxes of one class are merged before anything counts.
        result = replace(result, detections=one_box_per_object(result.detections))
        return self._incidents.store(
            Detected(
                camera_id=camera_id,
                media_id=payload.media_id,
                path=path,
                width=width,
                height=height,
                frame_time=frame_time,
                result=result,
                image=image,
                canvas=canvas,
            )
        )

    def _decode_key_frame_early(
        self, camera_id: str, image: bytes
    ) -> asyncio.Future[KeyFrameCanvas] | None:
        """Start decoding an upload's key frame while the detector looks at it, if it may need one.

        The phone's picture is what the first notification of a visit waits for, and decoding
        is most of it: started now, it runs beside the detector's answer and the detections'
        transaction instead of after them. Only for a camera with no incident open (a detection
        there opens one and is announced with this picture) and only where pictures are made; an
        upload found empty spends a decode for nothing (milliseconds of the executor, on a
        camera that was quiet). Its errors are those of the key frame, reported there.
        """
        ctx = self._ctx
        if ctx.media is None or not ctx.running or self._batcher.is_open(camera_id):
            return None
        future = asyncio.ensure_future(ctx.run_blocking(decode_key_frame, image))
        future.add_done_callback(_consume)
        return future

    async def _video_frame(self, path: str) -> tuple[bytes, float, int, int] | None:
        """Return a video's key frame, its time and the video's size; None when it has no picture.

        Raises PermanentJobError when the video is gone, outside the root or unreadable.
        """
        config = self._ctx.config
        try:
            real = await self._ctx.run_blocking(real_upload_path, config.camera_root, path)
        except FileNotFoundError as err:
            raise PermanentJobError(f"{shown(path)} was deleted before it was processed") from err
        except OutsideRootError as err:
            raise PermanentJobError(f"{shown(path)}: {err}") from err
        try:
            info = await probe_video(real, ffprobe=config.ffprobe)
            frame_time = key_frame_time(info.duration)
            image = await extract_frame(real, frame_time, ffmpeg=config.ffmpeg)
        except NoVideoStreamError:
            # Sound only (or only cover art): nothing to look at and nothing failed, so the
            # job finishes without detections instead of going dead and raising a repair.
            _LOGGER.warning("Skipping %s: it has no video stream", shown(path))
            return None
        except VideoError as err:
            raise PermanentJobError(err.reason) from err
        return image, frame_time, info.width, info.height

    async def _image_content(self, media_id: int, path: str) -> bytes:
        """Return an image upload's bytes: kept since intake, or read again.

        Raises PermanentJobError when the file is gone or outside the root.
        """
        cached = self._take_content(media_id)
        if cached is not None:
            return cached
        try:
            content: bytes = await self._ctx.run_blocking(
                read_upload, self._ctx.config.camera_root, path
            )
        except FileNotFoundError as err:
            raise PermanentJobError(f"{shown(path)} was deleted before it was processed") from err
        except OutsideRootError as err:
            raise PermanentJobError(f"{shown(path)}: {err}") from err
        return content


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen: an early key frame nobody needed may have failed."""
    if not future.cancelled():
        future.exception()
