"""Wires the stages together: watched folders in, risk-scored security events out.

upload -> watcher (debounce) -> intake (executor: validate, hash) -> dedupe -> media row and a
detect job (one transaction) -> detect worker (frame, detector) -> detections, batch and any
fast-path analyze job (one transaction, with the job's completion) -> batcher closes the batch
into an analyze job -> analyze worker (LLM, or the heuristic while it is unreachable) -> event
(one transaction, with the job's completion) -> callbacks.

The pipeline owns no policy of its own; each stage is a module of its own. It knows nothing of
Home Assistant: the host passes an aiohttp session, a runner for blocking work, a task factory
and callbacks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
import logging
import os
from pathlib import Path
import posixpath
import time
from typing import Any, Final
import uuid

import aiohttp
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .analyzer import Analyzer, AnalyzerError, LlmRejectedError, LlmUnavailableError
from .annotate import KeyFrameCanvas, decode_key_frame
from .baseline import assess, describe as describe_anomaly, heuristic_bonus, record_batch
from .batcher import Batcher, OpenBatch, add_to_batch, analyze_payload, claim_fast
from .dedupe import RecentHashes
from .derived import DerivedMedia
from .detector import DetectorClient, DetectorError, DetectorRejectedError, DetectorResult
from .eventmedia import EventMedia, SpanUpload, render_event_media, render_incident_clip
from .events import (
    delete_event as delete_stored_event,
    detection_from_row,
    event_from_row,
    get_event,
)
from .health import redact_url
from .jobs import (
    Job,
    JobKind,
    JobQueue,
    JobResult,
    JobState,
    JobWorker,
    PermanentJobError,
    TaskFactory,
    add_job,
)
from .media import Intake, RejectedMediaError, camera_id_for, classify, inspect_upload
from .models import (
    Camera,
    Detection,
    EventSource,
    MediaType,
    RiskLevel,
    SecurityEvent,
)
from .monitor import HealthMonitor
from .nms import one_box_per_object
from .prompts import AnalysisRequest
from .resilience import CircuitBreaker, CircuitOpenError, CircuitState, RetryPolicy
from .risk import (
    LEVEL_ORDER,
    OBJECT_WEIGHTS,
    UNKNOWN_WEIGHT,
    Verdict,
    class_facts,
    heuristic_verdict,
)
from .settings import LlmApi, PipelineOptions
from .storage import (
    BatchRow,
    BlockingRunner,
    CameraRow,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    MediaRow,
    is_transient,
    utcnow,
)
from .uploads import OutsideRootError, read_upload, real_upload_path, shown
from .video import NoVideoStreamError, VideoError, extract_frame, key_frame_time, probe_video
from .watcher import FolderWatcher, scan_uploads
from .zones import Zone, ZoneMap, describe as describe_zone

_LOGGER = logging.getLogger(__name__)

# Statements run for every upload, built once (building one costs more than running it).
_INSERT_NEW_MEDIA = {
    "sqlite": sqlite_insert(MediaRow)
    .on_conflict_do_nothing(index_elements=[MediaRow.sha256])
    .returning(MediaRow.media_id),
    "postgresql": postgresql_insert(MediaRow)
    .on_conflict_do_nothing(index_elements=[MediaRow.sha256])
    .returning(MediaRow.media_id),
}
_INSERT_DETECTIONS = insert(DetectionRow).returning(
    DetectionRow.detection_id, sort_by_parameter_order=True
)

MAX_CAMERA_ID: Final = 100
"""Characters of a camera id made from its folder's name (a folder name may have 255)."""
MAX_CAMERA_NAME: Final = 255
"""Characters of a camera's shown name (its column's size)."""

REGISTER_RETRY_FIRST: Final = 0.5
"""Seconds before an upload the database could not take is offered to it again (doubling)."""
REGISTER_RETRY_MAX: Final = 30.0
"""The longest wait between two attempts to register an upload."""

CONTENT_CACHE_BYTES: Final = 8 * 1024 * 1024
"""Image bytes kept between intake and detection; beyond this, detection reads the file."""


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything the pipeline needs to know, resolved by the host from its configuration."""

    camera_root: str
    database_url: str
    detector_urls: tuple[str, ...]
    llm_url: str
    """Empty when no LLM server is set: then every event is scored by the heuristic."""
    llm_api: LlmApi
    options: PipelineOptions
    local_tz: tzinfo
    intake_concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dedupe_ttl: float = 300.0
    detector_time_limit: float = 30.0
    llm_time_limit: float = 120.0
    summary_max: int = 200
    reasoning_max: int = 1000
    llm_extra_params: Mapping[str, Any] | None = None
    breaker_failures: int = 5
    """Consecutive failures after which a server is considered down."""
    breaker_reset: float = 30.0
    """Seconds a down server is left alone before one request probes it again."""
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    polling_interval: float = 1.0
    media_root: str | None = None
    """Folder for annotated frames, thumbnails and clips of events; None: none are made."""
    history_before: datetime | None = None
    """When the hub was set up: uploads already there before it are history, not new arrivals.

    The start-up scan leaves them alone (they would otherwise all be judged, and announced as
    new events, the first time a folder full of old snapshots is added, or added again);
    process_old_uploads() takes them in on purpose."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventUpdate:
    """An incident judged again: what it was, what it is, and what changed."""

    previous: SecurityEvent
    event: SecurityEvent
    changed: tuple[str, ...]
    """Among "verdict" (score, level, summary or who judged) and "ended" (its end time, or it
    closed)."""
    level_rose: bool
    """Whether its level is now higher than any it had before (what is worth a new alert)."""


@dataclass(frozen=True, kw_only=True)
class PipelineCallbacks:
    """How the pipeline tells its host what happened; each runs on the loop, after the commit."""

    camera_added: Callable[[Camera], None] = lambda _camera: None
    detections: Callable[[Camera, list[Detection]], None] = lambda _camera, _found: None
    event: Callable[[Camera, SecurityEvent], None] = lambda _camera, _event: None
    """A new incident, once its key frame is drawn: once per incident."""
    batch_changed: Callable[[str, bool], None] = lambda _camera_id, _open: None
    event_updated: Callable[[Camera, EventUpdate], None] = lambda _camera, _update: None
    """An incident's verdict or end changed (judged again, closed, or re-scored by the LLM)."""
    event_media: Callable[[Camera, SecurityEvent, EventMedia], None] = (
        lambda _camera, _event, _media: None
    )
    """(camera, event, what was made): an event's pictures are ready, shortly after the event."""


class ReprocessError(Exception):
    """A file cannot be queued again; key and placeholders name the reason for translation."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Remember the reason."""
        super().__init__(f"{key}: {placeholders}")
        self.key = key
        self.placeholders = placeholders


@dataclass(frozen=True, kw_only=True, slots=True)
class _Registered:
    camera: Camera
    new_camera: bool
    media_id: int | None
    job: Job | None = None
    """The detect job, when it was stored as running for the detect worker to take directly."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Stored:
    detections: list[Detection]
    batch: OpenBatch | None
    fast_path_jobs: int
    opened: SecurityEvent | None = None
    """The incident these detections opened, with its instant verdict."""
    closed_previous: bool = False
    """Whether the camera's previous incident closed at its cap (its final judgement queued)."""


def _camera(row: CameraRow) -> Camera:
    return Camera(camera_id=row.camera_id, name=row.name, folder=row.folder)


def _camera_for_folder(session: Session, folder: str, now: datetime) -> tuple[Camera, bool]:
    """Return the camera of folder, creating it (with an id no other folder has) if new."""
    row = session.scalar(select(CameraRow).where(CameraRow.folder == folder))
    if row is not None:
        return _camera(row), False
    # Bounded to fit the 128-character id column with a "_N" suffix, on every database.
    base = camera_id_for(folder)[:MAX_CAMERA_ID].rstrip("_")
    candidate, number = base, 2
    while session.get(CameraRow, candidate) is not None:
        candidate = f"{base}_{number}"
        number += 1
    row = CameraRow(
        camera_id=candidate, folder=folder, name=shown(folder)[:MAX_CAMERA_NAME], created_at=now
    )
    session.add(row)
    session.flush()  # the media row that follows is written with Core, past the ORM
    return _camera(row), True


class Pipeline:
    """One camera root's whole pipeline, started and stopped by the host."""

    def __init__(
        self,
        config: PipelineConfig,
        session: aiohttp.ClientSession,
        *,
        run_blocking: BlockingRunner | None = None,
        create_task: TaskFactory | None = None,
        callbacks: PipelineCallbacks | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Build the stages; nothing runs before start()."""
        self.config = config
        self._run_blocking: BlockingRunner = run_blocking or asyncio.to_thread
        self._create_task = create_task
        self.callbacks = callbacks or PipelineCallbacks()
        self._clock = clock
        options = config.options
        self.db = Database(config.database_url, run_blocking=self._run_blocking)
        self.queue = JobQueue(self.db, config.retry, clock=clock)
        self.detector = DetectorClient(
            session,
            config.detector_urls,
            threshold=options.confidence_threshold,
            time_limit=config.detector_time_limit,
            failure_threshold=config.breaker_failures,
            reset_timeout=config.breaker_reset,
        )
        self.llm_breaker = CircuitBreaker(
            name=f"LLM {redact_url(config.llm_url)}",
            failure_threshold=config.breaker_failures,
            reset_timeout=config.breaker_reset,
        )
        # No LLM server set (an empty URL): every event is scored by the heuristic.
        self.analyzer = (
            None
            if not config.llm_url
            else Analyzer(
                session,
                config.llm_url,
                config.llm_api,
                thresholds=options.severity,
                time_limit=config.llm_time_limit,
                breaker=self.llm_breaker,
                summary_max=config.summary_max,
                reasoning_max=config.reasoning_max,
                extra_params=config.llm_extra_params,
            )
        )
        self.health = HealthMonitor(
            session,
            detector_breakers=self.detector.breakers,
            llm_url=config.llm_url,
            llm_api=config.llm_api,
            llm_breaker=self.llm_breaker,
        )
        self.batcher = Batcher(
            self.db,
            self.queue,
            window=options.batch_window,
            idle=options.batch_idle_timeout,
            cap=options.incident_max_minutes * 60,
            clock=clock,
            on_change=self._batch_changed,
        )
        self.watcher = FolderWatcher(
            config.camera_root,
            self.submit,
            debounce=options.debounce,
            polling=options.polling_observer,
            run_blocking=self._run_blocking,
            polling_interval=config.polling_interval,
        )
        self._recent = RecentHashes(config.dedupe_ttl)
        self._intake_slots = asyncio.Semaphore(config.intake_concurrency)
        self._intake_tasks: set[asyncio.Task[None]] = set()
        self._cameras: dict[str, Camera] = {}
        self._cameras_by_folder: dict[str, Camera] = {}
        # Images read by intake, kept (up to a bound) until their detection job sends them.
        self._contents: OrderedDict[int, bytes] = OrderedDict()
        self._contents_size = 0
        self._workers: list[JobWorker] = []
        self.media = DerivedMedia(config.media_root) if config.media_root else None
        self._zones: dict[str, ZoneMap] = {}
        self._media_tasks: set[asyncio.Task[None]] = set()
        self._announcing: dict[str, asyncio.Event] = {}
        """Events stored whose key frame is being drawn: set once each is announced, so a
        re-score of one never reaches the host before the event itself."""
        self._started = False
        self.images_processed = 0
        self._detection_paused: set[str] = set()

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, resume interrupted work, start watching and queue the backlog.

        Raises storage.DatabaseError when the database cannot be used.
        """
        await self.db.start()
        try:
            await self.queue.recover()
            cameras = await self.db.run(
                lambda s: [_camera(row) for row in s.scalars(select(CameraRow)).all()]
            )
            for camera in cameras:
                self._cameras[camera.camera_id] = camera
                self._cameras_by_folder[camera.folder] = camera
                self.callbacks.camera_added(camera)
            await self.batcher.resume()
            options = self.config.options
            self._workers = [
                self._worker(JobKind.DETECT, self._detect, options.detector_concurrency),
                self._worker(JobKind.ANALYZE, self._analyze, options.llm_concurrency),
            ]
            if self.analyzer is not None:
                self._workers.append(self._worker(JobKind.RESCORE, self._rescore, 1))
            for worker in self._workers:
                worker.start()
            self._started = True
            await self.watcher.start()
            await self._queue_backlog()
        except BaseException:
            await self.stop()
            raise

    @property
    def _detect_worker(self) -> JobWorker | None:
        """Return the running detect worker, if any."""
        for worker in self._workers:
            if worker.kind is JobKind.DETECT:
                return worker
        return None

    def _worker(self, kind: JobKind, handler: Any, concurrency: int) -> JobWorker:
        available: Callable[[], bool] | None
        if kind is JobKind.DETECT:
            available, outage = self._detector_available, self._detector_outage
        elif kind is JobKind.RESCORE:
            # Re-scoring is only worth trying while the LLM may answer.
            available, outage = self.llm_breaker.would_allow, self._rescore_outage
        else:
            available, outage = None, self._llm_outage
        kwargs: dict[str, Any] = {}
        if self._create_task is not None:
            kwargs["create_task"] = self._create_task
        return JobWorker(
            self.queue,
            kind,
            handler,
            concurrency=concurrency,
            clock=self._clock,
            available=available,
            is_outage=outage,
            **kwargs,
        )

    async def stop(self) -> None:
        """Stop watching and working; what is unfinished resumes at the next start."""
        self._started = False
        await self.watcher.stop()
        for task in list(self._intake_tasks):
            task.cancel()
        if self._intake_tasks:
            await asyncio.gather(*self._intake_tasks, return_exceptions=True)
        for worker in self._workers:
            await worker.stop()
        self._workers = []
        for task in list(self._media_tasks):
            task.cancel()
        if self._media_tasks:
            await asyncio.gather(*self._media_tasks, return_exceptions=True)
        await self.batcher.stop()
        await self.db.close()

    async def _unprocessed_uploads(self) -> list[tuple[float, str]]:
        """Return (modification time, path) of the uploads not in the database, oldest first."""
        known: set[str] = set(
            await self.db.run(lambda s: list(s.scalars(select(MediaRow.path)).all()))
        )
        found = await self._run_blocking(scan_uploads, self.config.camera_root)
        return [(mtime, path) for mtime, path in found if path not in known]

    async def _queue_backlog(self) -> None:
        """Queue uploads that arrived while the pipeline was not running (not older history)."""
        unprocessed = await self._unprocessed_uploads()
        before = self.config.history_before
        cutoff = before.timestamp() if before is not None else None
        backlog = [path for mtime, path in unprocessed if cutoff is None or mtime >= cutoff]
        if old := len(unprocessed) - len(backlog):
            _LOGGER.info(
                "Leaving %s upload(s) alone that were there before this hub was set up; the "
                "process_old_uploads action takes them in on purpose",
                old,
            )
        if backlog:
            _LOGGER.info("Queuing %s upload(s) that arrived while stopped", len(backlog))
        for path in backlog:
            self.submit(path)

    async def process_old_uploads(
        self, *, camera_id: str | None = None, since: datetime | None = None
    ) -> int:
        """Queue the uploads not processed yet (history included); return how many.

        For a user who wants the snapshots that were in the folder before the hub was set up
        judged after all: they are detected and judged like new uploads, so their events are
        announced too. camera_id limits it to one camera's folder (it must exist), since to
        files changed at or after that time.
        """
        folder: str | None = None
        if camera_id is not None:
            camera = self._cameras.get(camera_id)
            if camera is None:
                raise ReprocessError("unknown_camera", camera=camera_id)
            folder = camera.folder
        root = self.config.camera_root
        cutoff = since.timestamp() if since is not None else None

        def wanted(mtime: float, path: str) -> bool:
            if cutoff is not None and mtime < cutoff:
                return False
            found = classify(root, path)
            return found is not None and (folder is None or found[0] == folder)

        chosen = [path for mtime, path in await self._unprocessed_uploads() if wanted(mtime, path)]
        _LOGGER.info("Queuing %s earlier upload(s) on request", len(chosen))
        for path in chosen:
            self.submit(path)
        return len(chosen)

    # --- intake ---------------------------------------------------------------------------------

    @property
    def cameras(self) -> Mapping[str, Camera]:
        """Return the known cameras by id."""
        return self._cameras

    def forget_camera(self, camera_id: str) -> None:
        """Forget a camera until the next upload in its folder (the user removed its device).

        Its rows stay in the database; that upload announces it again through camera_added.
        """
        camera = self._cameras.pop(camera_id, None)
        if camera is not None:
            self._cameras_by_folder.pop(camera.folder, None)

    def submit(self, path: str) -> None:
        """Take in an upload path (called by the watcher once the file has settled)."""
        if not self._started:
            return
        task = asyncio.get_running_loop().create_task(self._intake(path), name="ai_security intake")
        self._intake_tasks.add(task)
        task.add_done_callback(self._intake_tasks.discard)

    async def wait_for_intake(self) -> None:
        """Return once every submitted upload has been taken in (for tests and benchmarks).

        Only unfinished tasks are waited for: a finished one stays in the set until its done
        callback runs, in the loop's next iteration, and awaiting finished tasks does not yield
        to the loop, so waiting for the set to empty could spin forever, freezing the loop.
        """
        while pending := [task for task in self._intake_tasks if not task.done()]:
            await asyncio.wait(pending)

    async def _intake(self, path: str) -> None:
        root = self.config.camera_root
        classified = classify(root, path)
        if classified is None:
            return
        folder, _media_type = classified
        # The slot is held through each registration attempt: when the database falls behind,
        # intake waits instead of queueing unbounded work in front of the detection jobs.
        async with self._intake_slots:
            intake = await self._inspect(path)
            if intake is None:
                return
            if self._recent.seen(intake.sha256):
                _LOGGER.debug("Skipping %s: the same content arrived moments ago", shown(path))
                return
        registering = self._register_until_stored(folder, path, intake)
        del intake  # the coroutine owns the upload's bytes now; it drops them if it must wait
        stored = await registering
        if stored is None:
            return
        registered, content = stored
        if registered.new_camera or registered.camera.camera_id not in self._cameras:
            self._cameras[registered.camera.camera_id] = registered.camera
            self._cameras_by_folder[registered.camera.folder] = registered.camera
            _LOGGER.info("New camera %s (%s)", registered.camera.name, registered.camera.camera_id)
            self.callbacks.camera_added(registered.camera)
        if registered.media_id is None:
            _LOGGER.debug("Skipping %s: its content was processed before", path)
            return
        if content is not None:
            self._keep_content(registered.media_id, content)
        if registered.job is None:
            self.queue.notify(JobKind.DETECT)

    def _keep_content(self, media_id: int, content: bytes) -> None:
        """Remember an image's bytes for its detection, forgetting the oldest beyond the bound."""
        self._contents[media_id] = content
        self._contents_size += len(content)
        while self._contents_size > CONTENT_CACHE_BYTES and self._contents:
            _media_id, dropped = self._contents.popitem(last=False)
            self._contents_size -= len(dropped)

    def _take_content(self, media_id: int) -> bytes | None:
        content = self._contents.pop(media_id, None)
        if content is not None:
            self._contents_size -= len(content)
        return content

    async def _register_until_stored(
        self, folder: str, path: str, intake: Intake
    ) -> tuple[_Registered, bytes | None] | None:
        """Register an upload, retrying with backoff while the database is busy or gone.

        A SQLite file locked by another program or a PostgreSQL server restarting passes by
        itself: the upload waits here (its intake slot given back between attempts, so other
        uploads are not held behind it, and its bytes dropped, so an outage costs no memory
        per waiting upload: detection reads the file again) and is stored once the database
        answers. Only an error that cannot pass (a bug) gives up, logged; the start-up scan then
        finds the file again. Returns what was stored with the bytes still held; None when not
        stored.
        """
        delay = REGISTER_RETRY_FIRST
        attempts = 0
        while True:
            try:
                async with self._intake_slots:
                    return await self._register(folder, path, intake), intake.content
            except Exception as err:
                if not (self._started and is_transient(err)):
                    self._recent.forget(intake.sha256)
                    _LOGGER.exception(
                        "Could not register %s; it is picked up again at the next start",
                        shown(path),
                    )
                    return None
                attempts += 1
                if attempts == 1:
                    _LOGGER.warning(
                        "The database is busy or unreachable (%s); %s is stored as soon as it "
                        "answers",
                        err,
                        shown(path),
                    )
                else:
                    _LOGGER.debug("Still cannot register %s (attempt %s)", shown(path), attempts)
                intake = replace(intake, content=None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REGISTER_RETRY_MAX)

    async def _register(self, folder: str, path: str, intake: Intake) -> _Registered:
        """Store the upload and its detect job in one transaction; raise when that failed."""
        now = self._clock()
        known = self._cameras_by_folder.get(folder)
        # A detect worker with room takes the job straight from here, unclaimed (see
        # JobWorker.try_reserve); otherwise the job is queued and claimed later.
        worker = self._detect_worker
        handed = worker is not None and worker.try_reserve()

        def register(session: Session) -> _Registered:
            if known is None:
                camera, new_camera = _camera_for_folder(session, folder, now)
            else:
                camera, new_camera = known, False
            connection = session.connection()
            # One statement inserts the upload unless its content is known (then no row).
            media_id = connection.execute(
                _INSERT_NEW_MEDIA[connection.dialect.name],
                {
                    "camera_id": camera.camera_id,
                    "path": path,
                    "sha256": intake.sha256,
                    "media_type": intake.media_type.value,
                    "size": intake.size,
                    "width": intake.width,
                    "height": intake.height,
                    "received_at": now,
                },
            ).scalar()
            if media_id is None:
                return _Registered(camera=camera, new_camera=new_camera, media_id=None)
            # Everything the detect job needs travels in its payload: no look-up later.
            payload = {
                "media_id": media_id,
                "camera_id": camera.camera_id,
                "path": path,
                "media_type": intake.media_type.value,
                "width": intake.width,
                "height": intake.height,
            }
            job_id = add_job(session, JobKind.DETECT, payload, now, running=handed)
            job = None
            if handed:
                job = Job(
                    job_id=job_id,
                    kind=JobKind.DETECT,
                    payload=payload,
                    state=JobState.RUNNING,
                    attempts=0,
                    next_attempt_at=now,
                    last_error=None,
                )
            return _Registered(camera=camera, new_camera=new_camera, media_id=media_id, job=job)

        try:
            registered: _Registered = await self.db.run(register)
        except BaseException:
            if handed and worker is not None:
                worker.unreserve()
            raise
        if handed and worker is not None:
            if registered.job is None:
                worker.unreserve()
            else:
                worker.hand(registered.job)
        return registered

    async def _inspect(self, path: str) -> Intake | None:
        """Check and hash an upload in the executor; None (logged) when it cannot be used."""
        try:
            intake: Intake = await self._run_blocking(inspect_upload, self.config.camera_root, path)
        except FileNotFoundError:
            _LOGGER.debug("%s disappeared before it could be read", shown(path))
            return None
        except RejectedMediaError as err:
            _LOGGER.warning("Ignoring %s: %s", shown(path), err)
            return None
        except OutsideRootError as err:
            _LOGGER.warning("Not reading %s: %s", shown(path), err)
            return None
        except OSError as err:
            _LOGGER.warning("Cannot read %s: %s", shown(path), err)
            return None
        return intake

    def _announce(
        self,
        camera: Camera,
        event: SecurityEvent,
        detections: list[Detection],
        picture: tuple[str, float | None, bytes] | None = None,
        canvas: asyncio.Future[KeyFrameCanvas] | None = None,
    ) -> None:
        """Announce a stored event with its own picture: the key frame first, then the event.

        An automation triggered by the event (a phone notification) must find this event's
        annotated picture, not the previous one's: so the key frame is drawn before the event
        is announced (event_media, then event), and the other frames and the clip follow
        (event_media again). When no picture can be made the event is announced all the same.
        picture is the upload the detector was just sent, canvas its key frame being decoded.
        """
        media = self.media
        if media is None or not self._started:
            if canvas is not None:
                canvas.cancel()
            self.callbacks.event(camera, event)
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
            self.callbacks.event(camera, event)

        def first_picture(key_frame: Path) -> None:
            try:
                self.callbacks.event_media(
                    camera, event, EventMedia(key_frame=key_frame, clip=None, frames=1)
                )
            finally:
                announce()

        async def render() -> None:
            try:
                made = await render_event_media(
                    event,
                    detections,
                    media,
                    run_blocking=self._run_blocking,
                    ffmpeg=self.config.ffmpeg,
                    camera_root=self.config.camera_root,
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
                self.callbacks.event_media(camera, event, made)

        task = asyncio.get_running_loop().create_task(
            render(), name=f"ai_security media {event.event_id}"
        )
        self._media_tasks.add(task)
        task.add_done_callback(self._media_tasks.discard)

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
        if self.media is None or not self._started or self.batcher.is_open(camera_id):
            return None
        future = asyncio.ensure_future(self._run_blocking(decode_key_frame, image))
        future.add_done_callback(_consume)
        return future

    async def read_frame(self, path: str, frame_time: float | None) -> bytes | None:
        """Return an upload's picture (a clip's frame at frame_time); None when gone or refused.

        For the cameras' pictures: the path comes from the database, and like every other
        route it is read only when it lies inside the camera root.
        """
        root = self.config.camera_root
        try:
            if frame_time is None:
                content: bytes = await self._run_blocking(read_upload, root, path)
                return content
            real = await self._run_blocking(real_upload_path, root, path)
            return await extract_frame(real, frame_time, ffmpeg=self.config.ffmpeg)
        except FileNotFoundError:
            return None
        except (OSError, VideoError) as err:
            _LOGGER.debug("Cannot read %s: %s", shown(path), err)
            return None

    async def wait_for_media(self) -> None:
        """Return once the pictures of every announced event are made (tests and benchmarks).

        Only unfinished tasks are waited for, as in wait_for_intake (a finished task may still be
        in the set: waiting for the set to empty could spin forever, freezing the loop).
        """
        while pending := [task for task in self._media_tasks if not task.done()]:
            await asyncio.wait(pending)

    async def _judge(self, request: AnalysisRequest) -> Verdict:
        """Ask the LLM for a verdict, timing the requests it answers (the latency sensors)."""
        if self.analyzer is None:
            raise LlmUnavailableError("no LLM server is set: scored by the heuristic")
        started = time.perf_counter()
        verdict = await self.analyzer.analyze(request)
        self.health.record_llm((time.perf_counter() - started) * 1000.0)
        return verdict

    # --- detection ------------------------------------------------------------------------------

    def _detector_available(self) -> bool:
        return any(breaker.would_allow() for breaker in self.detector.breakers.values())

    def _detector_outage(self, error: BaseException) -> bool:
        """Return whether a failure is the detector's outage: no endpoint is considered up."""
        if isinstance(error, CircuitOpenError):
            return True
        if isinstance(error, DetectorError) and error.unreachable:
            # No connection at all (refused, no route): the server is down, not the image bad.
            # A time-out is not: an image that always times out must end as a dead job.
            return True
        return isinstance(error, DetectorError) and not any(
            breaker.state is CircuitState.CLOSED for breaker in self.detector.breakers.values()
        )

    async def _detect(self, job: Job) -> JobResult:
        payload = job.payload
        media_id = int(payload["media_id"])
        path = str(payload["path"])
        camera_id = str(payload["camera_id"])
        width, height = int(payload["width"]), int(payload["height"])
        frame_time: float | None = None
        if camera_id in self._detection_paused:
            # The upload stays registered (nothing is lost, its content stays known); it is
            # only not looked at: no detector request, no detections, no event.
            self._take_content(media_id)
            _LOGGER.debug("Not detecting %s: detection is paused for its camera", shown(path))
            return JobResult()
        if MediaType(payload["media_type"]) is MediaType.VIDEO:
            frame = await self._video_frame(path)
            if frame is None:
                return JobResult()
            image, frame_time, width, height = frame
            filename = os.path.splitext(os.path.basename(path))[0] + ".jpg"
        else:
            image = await self._image_content(media_id, path)
            filename = os.path.basename(path)
        canvas = self._decode_key_frame_early(camera_id, image) if job.attempts == 0 else None
        try:
            result = await self.detector.detect(
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
        self.health.record_detector(result.endpoint, result.latency_ms)
        # One object, one box: overlapping boxes of one class are merged before anything counts.
        result = replace(result, detections=one_box_per_object(result.detections))
        return self._store_detections(
            camera_id=camera_id,
            media_id=media_id,
            path=path,
            width=width,
            height=height,
            frame_time=frame_time,
            result=result,
            image=image,
            canvas=canvas,
        )

    async def _video_frame(self, path: str) -> tuple[bytes, float, int, int] | None:
        """Return a video's key frame, its time and the video's size; None when it has no picture.

        Raises PermanentJobError when the video is gone, outside the root or unreadable.
        """
        try:
            real = await self._run_blocking(real_upload_path, self.config.camera_root, path)
        except FileNotFoundError as err:
            raise PermanentJobError(f"{shown(path)} was deleted before it was processed") from err
        except OutsideRootError as err:
            raise PermanentJobError(f"{shown(path)}: {err}") from err
        try:
            info = await probe_video(real, ffprobe=self.config.ffprobe)
            frame_time = key_frame_time(info.duration)
            image = await extract_frame(real, frame_time, ffmpeg=self.config.ffmpeg)
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
            content: bytes = await self._run_blocking(read_upload, self.config.camera_root, path)
        except FileNotFoundError as err:
            raise PermanentJobError(f"{shown(path)} was deleted before it was processed") from err
        except OutsideRootError as err:
            raise PermanentJobError(f"{shown(path)}: {err}") from err
        return content

    def _store_detections(
        self,
        *,
        camera_id: str,
        media_id: int,
        path: str,
        width: int,
        height: int,
        frame_time: float | None,
        result: DetectorResult,
        image: bytes | None = None,
        canvas: asyncio.Future[KeyFrameCanvas] | None = None,
    ) -> JobResult:
        now = self._clock()
        options = self.config.options
        fast_types = set(options.fast_path_objects)
        zone_map = self._zones.get(camera_id)
        zones = [
            None
            if zone_map is None
            else _zone_name(
                zone_map.zone_for(
                    Detection(
                        label=found.label,
                        confidence=found.confidence,
                        bbox=found.bbox,
                        frame_width=width,
                        frame_height=height,
                    )
                )
            )
            for found in result.detections
        ]

        camera = self._cameras.get(camera_id) or Camera(
            camera_id=camera_id, name=camera_id, folder=camera_id
        )
        judge_at_once = self.analyzer is not None

        def store(session: Session) -> _Stored:
            if not result.detections:
                return _Stored(detections=[], batch=None, fast_path_jobs=0)
            fast_found = any(
                found.label in fast_types and found.confidence >= options.fast_path_confidence
                for found in result.detections
            )
            change = add_to_batch(
                session,
                camera_id,
                len(result.detections),
                now,
                cap=timedelta(minutes=options.incident_max_minutes),
                idle=timedelta(seconds=options.batch_idle_timeout),
                fast=fast_found and judge_at_once,
            )
            batch = change.batch
            rows = [
                {
                    "zone": zone,
                    "media_id": media_id,
                    "camera_id": camera_id,
                    "label": found.label,
                    "confidence": found.confidence,
                    "x": found.bbox.x,
                    "y": found.bbox.y,
                    "w": found.bbox.w,
                    "h": found.bbox.h,
                    "frame_width": width,
                    "frame_height": height,
                    "frame_time": frame_time,
                    "detected_at": now,
                    "batch_key": batch.batch_key,
                }
                for found, zone in zip(result.detections, zones, strict=True)
            ]
            ids = session.connection().execute(_INSERT_DETECTIONS, rows).scalars().all()
            detections = [
                Detection(
                    detection_id=detection_id,
                    media_id=media_id,
                    camera_id=camera_id,
                    label=found.label,
                    confidence=found.confidence,
                    bbox=found.bbox,
                    detected_at=now,
                    frame_width=width,
                    frame_height=height,
                    frame_time=frame_time,
                    path=path,
                    zone=zone,
                )
                for detection_id, found, zone in zip(ids, result.detections, zones, strict=True)
            ]
            opened: SecurityEvent | None = None
            judge = False
            if change.opened and batch.event_id is not None:
                # The incident opens with an instant verdict: the phone must not wait for the LLM.
                opened = self._open_incident(session, camera, batch, detections, now)
                judge = fast_found and judge_at_once
            elif batch.event_id is not None and fast_found and not batch.fast_judged:
                # Someone appeared in an incident that began with a car: ask at once.
                judge = claim_fast(session, batch)
            if judge:
                add_job(
                    session,
                    JobKind.ANALYZE,
                    analyze_payload(
                        camera_id,
                        batch.opened_at,
                        now,
                        batch_key=batch.batch_key,
                        event_id=batch.event_id,
                        final=False,
                        fast_path=True,
                        judged=batch.detection_count,
                    ),
                    now,
                )
            return _Stored(
                detections=detections,
                batch=batch,
                fast_path_jobs=1 if judge else 0,
                opened=opened,
                closed_previous=change.closed is not None,
            )

        def after(stored: _Stored) -> None:
            if stored.batch is not None:
                self.batcher.track(stored.batch)
            if stored.fast_path_jobs or stored.closed_previous:
                self.queue.notify(JobKind.ANALYZE)
            if stored.detections and (known := self._cameras.get(camera_id)) is not None:
                self.callbacks.detections(known, stored.detections)
                if stored.opened is not None:
                    picture = None if image is None else (path, frame_time, image)
                    self._announce(known, stored.opened, stored.detections, picture, canvas)
                    return
            if canvas is not None:
                canvas.cancel()  # no incident opened: the decoded picture is not needed

        return JobResult(store=store, after=after)

    def _open_incident(
        self,
        session: Session,
        camera: Camera,
        batch: OpenBatch,
        detections: list[Detection],
        now: datetime,
    ) -> SecurityEvent:
        """Store a new incident's event with the heuristic's verdict on its first detections.

        The heuristic answers in microseconds, so the incident is announced (and the phone
        notified) at once; the LLM's verdict replaces it moments later (see _judge_incident).
        """
        request = AnalysisRequest(
            camera_name=camera.name,
            started_at=now,
            ended_at=now,
            local_tz=self.config.local_tz,
            detections=tuple(detections),
            is_fast_path=False,
            zone_descriptions=self._zone_descriptions(camera.camera_id),
        )
        verdict = heuristic_verdict(request, self.config.options.severity)
        event = replace(
            _event(camera, request, verdict, detections, event_id=batch.event_id),
            ongoing=True,
        )
        session.add(_event_row(event, now))
        session.flush()
        _link(session, event.event_id, event.detection_ids)
        return event

    # --- analysis -------------------------------------------------------------------------------

    def _llm_outage(self, error: BaseException) -> bool:
        return (
            isinstance(error, AnalyzerError) and self.llm_breaker.state is not CircuitState.CLOSED
        )

    async def _verdict(
        self, camera: Camera, request: AnalysisRequest
    ) -> tuple[AnalysisRequest, Verdict, Any, dict[str, int]]:
        """Judge request (the LLM, or the heuristic when it cannot); with the hour's baseline.

        Returns the request as judged (with the baseline's context), the verdict, the baseline's
        assessment (None when unreadable) and the counts it was assessed on.
        """
        detections = list(request.detections)
        # How unusual this is for the hour: read before the batch itself joins the baseline.
        counts = {fact.label: fact.at_once for fact in class_facts(detections)}
        try:
            anomaly = await self.db.run(
                lambda session: assess(
                    session,
                    camera.camera_id,
                    counts,
                    started_at=request.started_at,
                    tz=self.config.local_tz,
                    now=self._clock(),
                )
            )
        except Exception:
            _LOGGER.exception("Cannot read the activity baseline of %s", camera.name)
            anomaly = None
        if anomaly is not None:
            note = describe_anomaly(anomaly)
            request = replace(
                request,
                context=(f"Activity for this hour: {note}",) if note else (),
                anomaly_bonus=heuristic_bonus(anomaly, _importance),
            )
        try:
            verdict = await self._judge(request)
        except LlmUnavailableError as err:
            _LOGGER.debug("LLM unavailable (%s): scoring %s heuristically", err, camera.name)
            verdict = heuristic_verdict(request, self.config.options.severity)
        except LlmRejectedError as err:
            # The server answered and refused this batch (400: a prompt it cannot take); asking
            # again would be refused again, so the event is scored without it.
            _LOGGER.warning(
                "The LLM refused the batch of %s (%s); scored heuristically", camera.name, err
            )
            verdict = heuristic_verdict(request, self.config.options.severity)
        return request, verdict, anomaly, counts

    def _with_anomaly(self, event: SecurityEvent, anomaly: Any) -> SecurityEvent:
        if anomaly is None:
            return event
        return replace(
            event,
            anomaly_score=round(anomaly.score, 2),
            anomaly_note=describe_anomaly(anomaly),
            anomaly_learning=anomaly.learning,
        )

    async def _analyze(self, job: Job) -> JobResult:
        payload = job.payload
        if payload.get("event_id"):
            return await self._judge_incident(job)
        # A job queued by schema version 3 (a closed batch, or fast-path detections): judged
        # into an event of its own, as it was then.
        camera_id = str(payload["camera_id"])
        batch_key: str | None = payload.get("batch_key")
        ids = [int(i) for i in payload.get("detection_ids", ())]
        camera, detections = await self.db.run(
            lambda s: _camera_and_detections(s, camera_id, ids, batch_key)
        )
        if camera is None:
            raise PermanentJobError(f"camera {camera_id} is no longer in the database")
        request = AnalysisRequest(
            camera_name=camera.name,
            started_at=datetime.fromisoformat(payload["started_at"]),
            ended_at=datetime.fromisoformat(payload["ended_at"]),
            local_tz=self.config.local_tz,
            detections=tuple(detections),
            is_fast_path=bool(payload.get("fast_path")),
            zone_descriptions=self._zone_descriptions(camera.camera_id),
        )
        request, verdict, anomaly, counts = await self._verdict(camera, request)
        event = self._with_anomaly(_event(camera, request, verdict, detections), anomaly)
        rescore = self._rescore_wanted(verdict)

        def store(session: Session) -> SecurityEvent:
            now = self._clock()
            session.add(_event_row(event, now))
            session.flush()
            _link(session, event.event_id, event.detection_ids)
            if rescore:
                add_job(session, JobKind.RESCORE, {"event_id": event.event_id}, now)
            if not request.is_fast_path:  # its detections come again with their batch
                self._learn(session, camera, counts, request, now)
            return event

        def after(stored: SecurityEvent) -> None:
            if rescore:
                self.queue.notify(JobKind.RESCORE)
            self._announce(camera, stored, detections)

        return JobResult(store=store, after=after)

    def _learn(
        self,
        session: Session,
        camera: Camera,
        counts: dict[str, int],
        request: AnalysisRequest,
        now: datetime,
    ) -> None:
        """Teach the camera's hourly baseline what a judged batch or incident held (once each)."""
        record_batch(
            session,
            camera.camera_id,
            counts,
            started_at=request.started_at,
            ended_at=request.ended_at,
            tz=self.config.local_tz,
            now=now,
        )

    def _rescore_wanted(self, verdict: Verdict) -> bool:
        """Return whether a verdict is the heuristic's, to be judged again once the LLM is back."""
        return (
            verdict.source is EventSource.HEURISTIC
            and self.config.options.rescore_minutes > 0
            and self.analyzer is not None
        )

    async def _judge_incident(self, job: Job) -> JobResult:
        """Judge an incident again with everything seen so far, and store the new verdict.

        The LLM (or the heuristic when it cannot answer) sees every detection of the incident.
        A judgement that covers fewer detections than one stored already came late (two were
        queued close together) and is dropped. The final one (the incident closed) also teaches
        the hour's baseline, makes the clip over the whole incident, and is re-scored by the
        LLM later when the heuristic had to give it.
        """
        payload = job.payload
        event_id = str(payload["event_id"])
        camera_id = str(payload["camera_id"])
        batch_key = str(payload["batch_key"])
        final = bool(payload.get("final"))
        found = await self.db.run(lambda s: _incident(s, camera_id, event_id, batch_key))
        if found is None:
            _LOGGER.debug("Not judging incident %s: deleted meanwhile", event_id)
            return JobResult()
        camera, old, detections = found
        if not detections:
            return JobResult()
        if (announcing := self._announcing.get(event_id)) is not None:
            await announcing.wait()  # the update never reaches the host before the incident
        ended_at = max(d.detected_at or old.ended_at for d in detections)
        request = AnalysisRequest(
            camera_name=camera.name,
            started_at=old.started_at,
            ended_at=ended_at,
            local_tz=self.config.local_tz,
            detections=tuple(detections),
            is_fast_path=bool(payload.get("fast_path")),
            zone_descriptions=self._zone_descriptions(camera.camera_id),
        )
        request, verdict, anomaly, counts = await self._verdict(camera, request)
        judged = _event(camera, request, verdict, detections, event_id=event_id)
        rescore = final and self._rescore_wanted(verdict)

        def store(session: Session) -> EventUpdate | None:
            now = self._clock()
            row = session.get(EventRow, event_id)
            if row is None:
                return None  # deleted while it was being judged
            previous = event_from_row(row)
            if final:
                # Stored as ended when it closed (so nothing shows it going on should this
                # judgement never succeed); for the host it ends with its last verdict, now.
                previous = replace(previous, ongoing=True)
            if len(detections) < row.judged_detections:
                # A newer judgement is stored: keep its verdict; only a close still counts.
                if not final:
                    return None
                row.ongoing = False
                row.updated_at = now
                return EventUpdate(
                    previous=previous,
                    event=event_from_row(row),
                    changed=("ended",),
                    level_rose=False,
                )
            peak = RiskLevel(row.peak_level) if row.peak_level in _LEVEL_VALUES else None
            rose = _apply_judgement(row, judged, final=final, now=now)
            linked = set(
                session.scalars(
                    select(EventDetectionRow.detection_id).where(
                        EventDetectionRow.event_id == event_id
                    )
                )
            )
            new_links = [i for i in judged.detection_ids if i not in linked]
            _link(session, event_id, new_links)
            if rescore:
                add_job(session, JobKind.RESCORE, {"event_id": event_id}, now)
            if final:
                self._learn(session, camera, counts, request, now)
            session.flush()
            event = self._with_anomaly(
                event_from_row(row, tuple(sorted(linked | set(new_links)))), anomaly
            )
            return _update(previous, event, level_rose=rose and peak is not None)

        def after(update_: EventUpdate | None) -> None:
            if rescore:
                self.queue.notify(JobKind.RESCORE)
            if update_ is None:
                return
            if update_.changed:
                self.callbacks.event_updated(camera, update_)
            if final and not update_.event.ongoing:
                self._finish_media(camera, update_.event, detections, batch_key)

        return JobResult(store=store, after=after)

    def _finish_media(
        self, camera: Camera, event: SecurityEvent, detections: list[Detection], batch_key: str
    ) -> None:
        """Draw a closed incident's other frames and make its clip over the whole visit.

        The key frame stays as it is: it is the picture the phone already shows.
        """
        media = self.media
        if media is None or not self._started:
            return

        async def render() -> None:
            try:
                uploads = await self.db.run(
                    lambda s: _uploads_between(s, camera.camera_id, batch_key, event.ended_at)
                )
                made = await render_event_media(
                    event,
                    detections,
                    media,
                    run_blocking=self._run_blocking,
                    ffmpeg=self.config.ffmpeg,
                    camera_root=self.config.camera_root,
                    clip=False,
                    key_frame=False,
                )
                clip = await render_incident_clip(
                    event,
                    detections,
                    uploads,
                    media,
                    run_blocking=self._run_blocking,
                    ffmpeg=self.config.ffmpeg,
                    camera_root=self.config.camera_root,
                )
            except Exception:
                _LOGGER.exception("Making the clip of event %s failed", event.event_id)
                return
            if clip is not None:
                self.callbacks.event_media(camera, event, replace(made, clip=clip))

        task = asyncio.get_running_loop().create_task(
            render(), name=f"ai_security clip {event.event_id}"
        )
        self._media_tasks.add(task)
        task.add_done_callback(self._media_tasks.discard)

    def _rescore_outage(self, error: BaseException) -> bool:
        return isinstance(error, LlmUnavailableError) or self._llm_outage(error)

    async def _rescore(self, job: Job) -> JobResult | None:
        """Judge a heuristic event again with the LLM, if it is still recent enough to matter."""
        event_id = str(job.payload["event_id"])
        found = await self.db.run(lambda s: _stored_event(s, event_id))
        if found is None:
            return None  # deleted meanwhile (retention)
        camera, old, created_at, detections = found
        if (announcing := self._announcing.get(event_id)) is not None:
            await announcing.wait()
        limit = timedelta(minutes=self.config.options.rescore_minutes)
        if old.source is not EventSource.HEURISTIC or self._clock() - created_at > limit:
            _LOGGER.debug("Not re-scoring event %s: no longer recent", event_id)
            return None
        request = AnalysisRequest(
            camera_name=camera.name,
            started_at=old.started_at,
            ended_at=old.ended_at,
            local_tz=self.config.local_tz,
            detections=tuple(detections),
            is_fast_path=old.is_fast_path,
            zone_descriptions=self._zone_descriptions(camera.camera_id),
        )
        try:
            verdict = await self._judge(request)
        except LlmRejectedError as err:
            _LOGGER.info("The LLM refused to re-score event %s (%s); score kept", event_id, err)
            return None
        new = replace(
            old,
            risk_score=verdict.risk_score,
            risk_level=verdict.risk_level,
            summary=verdict.summary,
            reasoning=verdict.reasoning,
            source=verdict.source,
        )

        def store(session: Session) -> EventUpdate | None:
            row = session.get(EventRow, event_id)
            if row is None:
                return None
            peak = RiskLevel(row.peak_level) if row.peak_level in _LEVEL_VALUES else old.risk_level
            rose = LEVEL_ORDER.index(new.risk_level) > LEVEL_ORDER.index(peak)
            row.risk_score = new.risk_score
            row.risk_level = new.risk_level.value
            row.summary = new.summary
            row.reasoning = new.reasoning
            row.source = new.source.value
            row.updated_at = self._clock()
            if rose:
                row.peak_level = new.risk_level.value
            return _update(old, new, level_rose=rose)

        def after(stored: EventUpdate | None) -> None:
            if stored is not None and stored.changed:
                self.callbacks.event_updated(camera, stored)

        return JobResult(store=store, after=after)

    def _batch_changed(self, camera_id: str, is_open: bool) -> None:
        self.callbacks.batch_changed(camera_id, is_open)

    # --- state for the host ---------------------------------------------------------------------

    def set_detection_paused(self, camera_id: str, paused: bool) -> None:
        """Pause or resume detection for one camera (the user's switch), from its next job on.

        While paused, the camera's uploads are still taken in and stored, but their detect jobs
        finish without asking the detector. Resuming does not go back over them: a camera is
        paused because what it sees then is not to be judged (work in the garden, a party).
        """
        if paused:
            self._detection_paused.add(camera_id)
        else:
            self._detection_paused.discard(camera_id)

    def set_zones(self, zones: Mapping[str, ZoneMap]) -> None:
        """Use these zones (camera id -> its zones) for detections from now on."""
        self._zones = {camera_id: found for camera_id, found in zones.items() if len(found)}

    def zones_of(self, camera_id: str) -> ZoneMap | None:
        """Return a camera's zones, if it has any."""
        return self._zones.get(camera_id)

    def _zone_descriptions(self, camera_id: str) -> dict[str, str]:
        found = self._zones.get(camera_id)
        return {} if found is None else {zone.name: describe_zone(zone) for zone in found}

    async def delete_event(self, event_id: str) -> bool:
        """Delete an event with its pictures and clip; return whether it existed.

        The rows go first: pictures without an event are unreachable anyway, while an event
        whose pictures vanished still shows its verdict.
        """

        def remove(session: Session) -> SecurityEvent | None:
            event = get_event(session, event_id)
            if event is None:
                return None
            # An incident deleted while open ends with it: the next detection opens a new one.
            session.execute(delete(BatchRow).where(BatchRow.event_id == event_id))
            delete_stored_event(session, event_id)
            return event

        event = await self.db.run(remove)
        if event is None:
            return False
        if self.media is not None:
            try:
                await self._run_blocking(
                    self.media.delete_event, event.camera_id, event.event_id, event.started_at
                )
            except (OSError, ValueError) as err:
                _LOGGER.warning("Could not delete the pictures of event %s: %s", event_id, err)
        return True

    async def analyze_now(self, camera_id: str) -> bool:
        """Close the camera's open batch now (it is judged at once); return whether one was open."""
        return await self.batcher.close_now(camera_id)

    async def reprocess(self, path: str) -> int:
        """Queue an upload for detection again, even if its content was processed; return the job.

        Raises ReprocessError (with a translation key) for a path that is not an upload under the
        camera root or that cannot be read.
        """
        root = self.config.camera_root
        # Pure string work (no file system): the path as given, relative to the root or not.
        full = posixpath.normpath(posixpath.join(root, path))
        classified = classify(root, full)
        if classified is None:
            raise ReprocessError("not_an_upload", path=path)
        folder, _media_type = classified
        try:
            intake: Intake = await self._run_blocking(inspect_upload, root, full)
        except FileNotFoundError as err:
            raise ReprocessError("file_not_found", path=path) from err
        except (RejectedMediaError, OSError) as err:
            raise ReprocessError("file_unusable", path=path, error=str(err)) from err
        now = self._clock()
        known = self._cameras_by_folder.get(folder)

        def register(session: Session) -> tuple[_Registered, int]:
            if known is None:
                camera, new_camera = _camera_for_folder(session, folder, now)
            else:
                camera, new_camera = known, False
            media_id = session.scalar(
                select(MediaRow.media_id).where(MediaRow.sha256 == intake.sha256)
            )
            if media_id is None:
                row = MediaRow(
                    camera_id=camera.camera_id,
                    path=full,
                    sha256=intake.sha256,
                    media_type=intake.media_type.value,
                    size=intake.size,
                    width=intake.width,
                    height=intake.height,
                    received_at=now,
                )
                session.add(row)
                session.flush()
                media_id = row.media_id
            payload = {
                "media_id": media_id,
                "camera_id": camera.camera_id,
                "path": full,
                "media_type": intake.media_type.value,
                "width": intake.width,
                "height": intake.height,
            }
            job_id = add_job(session, JobKind.DETECT, payload, now)
            registered = _Registered(camera=camera, new_camera=new_camera, media_id=media_id)
            return registered, job_id

        registered, job_id = await self.db.run(register)
        if registered.new_camera or registered.camera.camera_id not in self._cameras:
            self._cameras[registered.camera.camera_id] = registered.camera
            self._cameras_by_folder[registered.camera.folder] = registered.camera
            self.callbacks.camera_added(registered.camera)
        if intake.content is not None and registered.media_id is not None:
            self._keep_content(registered.media_id, intake.content)
        self.queue.notify(JobKind.DETECT)
        _LOGGER.info("Queued %s for detection again (job %s)", shown(full), job_id)
        return job_id

    async def queue_depths(self) -> dict[str, int]:
        """Return queued, dead and running job counts, for sensors and diagnostics."""
        counts = await self.queue.counts()
        return {
            f"{kind.value}_{state.value}": counts.get((kind, state), 0)
            for kind in JobKind
            for state in JobState
        }


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen: an early key frame nobody needed may have failed."""
    if not future.cancelled():
        future.exception()


def _importance(label: str) -> float:
    """Return how much an unusual count of label weighs, next to unusual people (1)."""
    return OBJECT_WEIGHTS.get(label, UNKNOWN_WEIGHT) / OBJECT_WEIGHTS["person"]


def _zone_name(zone: Zone | None) -> str | None:
    return None if zone is None else zone.name


def _camera_and_detections(
    session: Session, camera_id: str, ids: list[int], batch_key: str | None = None
) -> tuple[Camera | None, list[Detection]]:
    camera_row = session.get(CameraRow, camera_id)
    which = (
        DetectionRow.batch_key == batch_key
        if batch_key is not None
        else DetectionRow.detection_id.in_(ids)
    )
    rows = session.execute(
        select(DetectionRow, MediaRow.path)
        .join(MediaRow, MediaRow.media_id == DetectionRow.media_id)
        .where(which)
        .order_by(DetectionRow.detected_at, DetectionRow.detection_id)
    ).all()
    detections = [detection_from_row(row, path) for row, path in rows]
    return (_camera(camera_row) if camera_row is not None else None), detections


def _stored_event(
    session: Session, event_id: str
) -> tuple[Camera, SecurityEvent, datetime, list[Detection]] | None:
    row = session.get(EventRow, event_id)
    if row is None:
        return None
    camera_row = session.get(CameraRow, row.camera_id)
    if camera_row is None:
        return None
    ids = list(
        session.scalars(
            select(EventDetectionRow.detection_id).where(EventDetectionRow.event_id == event_id)
        ).all()
    )
    _camera_found, detections = _camera_and_detections(session, row.camera_id, ids)
    event = event_from_row(row, tuple(ids))
    return _camera(camera_row), event, row.created_at, detections


_LEVEL_VALUES: Final = frozenset(level.value for level in RiskLevel)


def _update(previous: SecurityEvent, event: SecurityEvent, *, level_rose: bool) -> EventUpdate:
    """Return what changed from previous to event (see EventUpdate.changed)."""
    changed: list[str] = []
    if (previous.risk_score, previous.risk_level, previous.summary, previous.source) != (
        event.risk_score,
        event.risk_level,
        event.summary,
        event.source,
    ):
        changed.append("verdict")
    if previous.ended_at != event.ended_at or previous.ongoing != event.ongoing:
        changed.append("ended")
    return EventUpdate(
        previous=previous, event=event, changed=tuple(changed), level_rose=level_rose
    )


def _link(session: Session, event_id: str, detection_ids: Sequence[int]) -> None:
    """Record which detections an event was judged from (nothing to do for none)."""
    if detection_ids:
        session.execute(
            insert(EventDetectionRow),
            [{"event_id": event_id, "detection_id": ident} for ident in detection_ids],
        )


def _apply_judgement(row: EventRow, judged: SecurityEvent, *, final: bool, now: datetime) -> bool:
    """Write an incident's new verdict into its row; return whether its level rose to a new peak.

    judged holds the verdict on every detection so far (its detection_ids).
    """
    peak = RiskLevel(row.peak_level) if row.peak_level in _LEVEL_VALUES else None
    rose = peak is None or LEVEL_ORDER.index(judged.risk_level) > LEVEL_ORDER.index(peak)
    row.risk_score = judged.risk_score
    row.risk_level = judged.risk_level.value
    row.summary = judged.summary
    row.reasoning = judged.reasoning
    row.source = judged.source.value
    row.is_fast_path = judged.is_fast_path
    row.object_types = list(judged.object_types)
    row.zones = list(judged.zones) or None
    row.detection_count = judged.detection_count
    row.ended_at = max(row.ended_at, judged.ended_at)
    row.judged_detections = len(judged.detection_ids)
    row.ongoing = row.ongoing and not final
    row.updated_at = now
    if rose:
        row.peak_level = judged.risk_level.value
    return rose


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


def _incident(
    session: Session, camera_id: str, event_id: str, batch_key: str
) -> tuple[Camera, SecurityEvent, list[Detection]] | None:
    """Return an incident's camera, its event as stored, and every detection of it so far."""
    row = session.get(EventRow, event_id)
    camera, detections = _camera_and_detections(session, camera_id, [], batch_key)
    if row is None or camera is None:
        return None
    return camera, event_from_row(row), detections


def _event_row(event: SecurityEvent, now: datetime) -> EventRow:
    """Return the row of a new event (an incident, or a version-3 batch's event)."""
    return EventRow(
        event_id=event.event_id,
        camera_id=event.camera_id,
        started_at=event.started_at,
        ended_at=event.ended_at,
        risk_score=event.risk_score,
        risk_level=event.risk_level.value,
        summary=event.summary,
        reasoning=event.reasoning,
        object_types=list(event.object_types),
        detection_count=event.detection_count,
        is_fast_path=event.is_fast_path,
        source=event.source.value,
        reviewed=False,
        created_at=now,
        zones=list(event.zones) or None,
        ongoing=event.ongoing,
        judged_detections=len(event.detection_ids),
        peak_level=event.risk_level.value,
        updated_at=now,
    )


def _event(
    camera: Camera,
    request: AnalysisRequest,
    verdict: Verdict,
    detections: list[Detection],
    *,
    event_id: str | None = None,
) -> SecurityEvent:
    object_types = tuple(sorted({d.label for d in detections}))
    return SecurityEvent(
        event_id=event_id or uuid.uuid4().hex,
        camera_id=camera.camera_id,
        started_at=request.started_at,
        ended_at=request.ended_at,
        risk_score=verdict.risk_score,
        risk_level=verdict.risk_level,
        summary=verdict.summary,
        reasoning=verdict.reasoning,
        object_types=object_types,
        detection_count=len(detections),
        is_fast_path=request.is_fast_path,
        source=verdict.source,
        detection_ids=tuple(d.detection_id for d in detections if d.detection_id is not None),
        zones=tuple(sorted({d.zone for d in detections if d.zone})),
    )
