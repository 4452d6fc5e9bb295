"""Builds the stages and connects them: watched folders in, risk-scored security events out.

upload -> watcher (file closed or moved in) -> intake.py (executor: validate, hash; dedupe; a
media row and a detect job in one transaction) -> detect.py (the frame, the detector pool, one
box per object) -> incidents.py (detections into the camera's incident, opened with an instant
verdict; one transaction with the job's completion) -> announce.py (the key frame drawn, then
the incident announced) -> batcher.py (judges and closes incidents into analyze jobs) ->
analyze.py (the LLM, or the heuristic while it cannot answer; the verdict stored with the job's
completion) -> rescore.py (a heuristic's verdict judged again once the LLM is back).

This module owns no stage's work: it builds the clients and the stages, starts and stops them,
runs a job worker per kind, and answers the host's questions by asking the stage that knows.
It knows nothing of Home Assistant: the host passes an aiohttp session, a runner for blocking
work, a task factory and callbacks.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
import logging
from typing import Any

import aiohttp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .analyze import AnalyzeStage
from .analyzer import Analyzer
from .announce import Announcer
from .batcher import Batcher
from .context import (
    Cameras,
    EventUpdate,
    PipelineCallbacks,
    PipelineConfig,
    StageContext,
    Zones,
)
from .derived import DerivedMedia
from .detect import DetectStage
from .detector import DetectorClient
from .events import delete_event as delete_stored_event, get_event
from .incidents import IncidentStage
from .intake import IntakeStage, ReprocessError
from .jobs import JobKind, JobQueue, JobState, JobWorker, TaskFactory
from .learned_spots import Spot, learn_spots
from .llm_provider import LlmAsker
from .models import Camera, SecurityEvent
from .monitor import HealthMonitor
from .records import camera_of
from .rescore import RescoreStage
from .resilience import CircuitBreaker
from .storage import BatchRow, BlockingRunner, CameraRow, Database, utcnow
from .watcher import FolderWatcher
from .zones import ZoneMap

__all__ = [
    "EventUpdate",
    "Pipeline",
    "PipelineCallbacks",
    "PipelineConfig",
    "ReprocessError",
]

_LOGGER = logging.getLogger(__name__)


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
        llm_askers: Mapping[str, LlmAsker] | None = None,
    ) -> None:
        """Build the clients and the stages; nothing runs before start().

        llm_askers are LLMs the host reaches by name (Home Assistant's AI Task entities): they
        join the configured LLM servers' pool.
        """
        self.config = config
        self._create_task = create_task
        self._clock = clock
        options = config.options
        runner: BlockingRunner = run_blocking or asyncio.to_thread
        self.db = Database(config.database_url, run_blocking=runner)
        self.queue = JobQueue(self.db, config.retry, clock=clock)
        callbacks = callbacks or PipelineCallbacks()
        self._ctx = ctx = StageContext(
            config=config,
            db=self.db,
            queue=self.queue,
            run_blocking=runner,
            clock=clock,
            callbacks=callbacks,
            cameras=Cameras(callbacks),
            zones=Zones(),
            media=DerivedMedia(config.media_root) if config.media_root else None,
        )
        self.detector = DetectorClient(
            session,
            config.detector_urls,
            threshold=options.confidence_threshold,
            time_limit=config.detector_time_limit,
            failure_threshold=config.breaker_failures,
            reset_timeout=config.breaker_reset,
        )
        # No LLM server set: every event is scored by the heuristic.
        askers = dict(llm_askers or {})
        self.analyzer = (
            Analyzer(
                session,
                config.llm_urls,
                config.llm_api,
                thresholds=options.severity,
                time_limit=config.llm_time_limit,
                failure_threshold=config.breaker_failures,
                reset_timeout=config.breaker_reset,
                summary_max=config.summary_max,
                reasoning_max=config.reasoning_max,
                extra_params=config.llm_extra_params,
                askers=askers,
            )
            if config.llm_urls or askers
            else None
        )
        self.health = HealthMonitor(
            session,
            detector_breakers=self.detector.breakers,
            llm_breakers=self.llm_breakers,
            llm_api=config.llm_api,
            llm_probes={name: asker.probe for name, asker in askers.items()},
        )
        self.batcher = Batcher(
            self.db,
            self.queue,
            window=options.batch_window,
            idle=options.batch_idle_timeout,
            cap=options.incident_max_minutes * 60,
            clock=clock,
            on_change=callbacks.batch_changed,
        )
        self.announcer = Announcer(ctx)
        self.intake = IntakeStage(ctx, lambda: self._workers.get(JobKind.DETECT))
        self.incidents = IncidentStage(
            ctx, self.batcher, self.announcer, judge_at_once=self.analyzer is not None
        )
        self.detect = DetectStage(
            ctx,
            detector=self.detector,
            incidents=self.incidents,
            batcher=self.batcher,
            health=self.health,
            take_content=self.intake.take_content,
        )
        self.analyze = AnalyzeStage(ctx, self.analyzer, self.health, self.announcer)
        self.rescore = RescoreStage(ctx, self.analyze, self.announcer)
        self.watcher = FolderWatcher(
            config.camera_root,
            self.intake.submit,
            debounce=options.debounce,
            polling=options.polling_observer,
            run_blocking=runner,
            polling_interval=config.polling_interval,
        )
        self._workers: dict[JobKind, JobWorker] = {}

    @property
    def llm_breakers(self) -> Mapping[str, CircuitBreaker]:
        """Return each LLM server's breaker by its URL as configured (none without an LLM)."""
        return self.analyzer.breakers if self.analyzer is not None else {}

    @property
    def callbacks(self) -> PipelineCallbacks:
        """Return how the pipeline tells its host what happened."""
        return self._ctx.callbacks

    @property
    def media(self) -> DerivedMedia | None:
        """Return where events' pictures go (None: none are made)."""
        return self._ctx.media

    @property
    def images_processed(self) -> int:
        """Return how many pictures the detector has answered for since the start."""
        return self.detect.images_processed

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, resume interrupted work, start watching and queue the backlog.

        Raises storage.DatabaseError when the database cannot be used.
        """
        await self.db.start()
        try:
            await self.queue.recover()
            cameras = await self.db.run(
                lambda s: [camera_of(row) for row in s.scalars(select(CameraRow)).all()]
            )
            for camera in cameras:
                self._ctx.cameras.add(camera, new=True)
            await self.relearn_spots()
            await self.batcher.resume()
            options = self.config.options
            self._worker(JobKind.DETECT, self.detect.handle, options.detector_concurrency)
            self._worker(JobKind.ANALYZE, self.analyze.handle, options.llm_concurrency)
            if self.analyzer is not None:
                self._worker(JobKind.RESCORE, self.rescore.handle, 1)
            for worker in self._workers.values():
                worker.start()
            self._ctx.running = True
            await self.watcher.start()
            await self.intake.queue_backlog()
        except BaseException:
            await self.stop()
            raise

    def _worker(self, kind: JobKind, handler: Any, concurrency: int) -> None:
        available: Callable[[], bool] | None
        if kind is JobKind.DETECT:
            available, outage = self.detect.available, self.detect.is_outage
        elif kind is JobKind.RESCORE:
            # Re-scoring is only worth trying while the LLM may answer.
            available, outage = self.analyze.available, self.rescore.is_outage
        else:
            available, outage = None, self.analyze.is_outage
        kwargs: dict[str, Any] = {}
        if self._create_task is not None:
            kwargs["create_task"] = self._create_task
        self._workers[kind] = JobWorker(
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
        self._ctx.running = False
        await self.watcher.stop()
        await self.intake.stop()
        for worker in self._workers.values():
            await worker.stop()
        self._workers = {}
        await self.announcer.stop()
        await self.batcher.stop()
        await self.db.close()

    # --- uploads in -----------------------------------------------------------------------------

    @property
    def cameras(self) -> Mapping[str, Camera]:
        """Return the known cameras by id."""
        return self._ctx.cameras.by_id

    def forget_camera(self, camera_id: str) -> None:
        """Forget a camera until the next upload in its folder (the user removed its device).

        Its rows stay in the database; that upload announces it again through camera_added.
        """
        self._ctx.cameras.forget(camera_id)

    def submit(self, path: str) -> None:
        """Take in an upload path (called by the watcher once the file has settled)."""
        self.intake.submit(path)

    async def wait_for_intake(self) -> None:
        """Return once every submitted upload has been taken in (for tests and benchmarks)."""
        await self.intake.wait()

    async def process_old_uploads(
        self, *, camera_id: str | None = None, since: datetime | None = None
    ) -> int:
        """Queue the uploads not processed yet, history included; see IntakeStage."""
        return await self.intake.process_old_uploads(camera_id=camera_id, since=since)

    async def reprocess(self, path: str) -> int:
        """Queue an upload for detection again; see IntakeStage.reprocess."""
        return await self.intake.reprocess(path)

    # --- pictures -------------------------------------------------------------------------------

    async def read_frame(self, path: str, frame_time: float | None) -> bytes | None:
        """Return an upload's picture (a clip's frame at frame_time); None when gone or refused."""
        return await self.announcer.read_frame(path, frame_time)

    async def wait_for_media(self) -> None:
        """Return once the pictures of every announced event are made (tests and benchmarks)."""
        await self.announcer.wait()

    # --- the host's controls --------------------------------------------------------------------

    def set_detection_paused(self, camera_id: str, paused: bool) -> None:
        """Pause or resume detection for one camera (the user's switch), from its next job on.

        While paused, the camera's uploads are still taken in and stored, but their detect jobs
        finish without asking the detector. Resuming does not go back over them: a camera is
        paused because what it sees then is not to be judged (work in the garden, a party).
        """
        self.detect.set_paused(camera_id, paused)

    def set_zones(self, zones: Mapping[str, ZoneMap]) -> None:
        """Use these zones (camera id -> its zones) for detections from now on."""
        self._ctx.zones.set(zones)

    def set_camera_notes(self, notes: Mapping[str, str]) -> None:
        """Tell the LLM what is normal at each camera (camera id -> its owner's notes)."""
        self._ctx.notes = {camera_id: text for camera_id, text in notes.items() if text.strip()}

    async def relearn_spots(self, camera_id: str | None = None) -> None:
        """Learn a camera's spots again (every camera's when None) after its reviews changed.

        Called at start and by the host after each review, reset and forgetting: the next
        upload is then matched against what the user has said so far (learned_spots.py).
        """
        ids = [camera_id] if camera_id is not None else list(self._ctx.cameras.by_id)
        for one in ids:
            self._ctx.spots[one] = await self.db.run(partial(_learn, camera_id=one))

    def learned_spots(self, camera_id: str) -> tuple[Spot, ...]:
        """Return a camera's learned spots as last learned."""
        return self._ctx.spots.get(camera_id, ())

    def zones_of(self, camera_id: str) -> ZoneMap | None:
        """Return a camera's zones, if it has any."""
        return self._ctx.zones.of(camera_id)

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
        media = self._ctx.media
        if media is not None:
            try:
                await self._ctx.run_blocking(
                    media.delete_event, event.camera_id, event.event_id, event.started_at
                )
            except (OSError, ValueError) as err:
                _LOGGER.warning("Could not delete the pictures of event %s: %s", event_id, err)
        return True

    async def analyze_now(self, camera_id: str) -> bool:
        """Close the camera's open batch now (it is judged at once); return whether one was open."""
        return await self.batcher.close_now(camera_id)

    async def queue_depths(self) -> dict[str, int]:
        """Return queued, dead and running job counts, for sensors and diagnostics."""
        counts = await self.queue.counts()
        return {
            f"{kind.value}_{state.value}": counts.get((kind, state), 0)
            for kind in JobKind
            for state in JobState
        }


def _learn(session: Session, *, camera_id: str) -> tuple[Spot, ...]:
    """Return a camera's learned spots (in the database thread)."""
    return learn_spots(session, camera_id)
