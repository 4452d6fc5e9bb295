"""The analyze stage: an incident judged with everything seen so far, its verdict stored.

analyze job -> the incident's detections (its batch so far) -> the hour's baseline (how
unusual this is) -> the LLM, or the heuristic when it cannot answer -> the verdict stored with
the job's completion -> the host told what changed. A judgement that covers fewer detections
than one stored already came late and is dropped; the final one (the incident closed) also
teaches the hour's baseline, has the clip made over the whole visit, and is queued for a
re-score when the heuristic had to give it. Jobs a version-3 database left queued (a batch or
a fast-path list without an incident) are judged into an event of their own, as they were then.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .analyzer import Analyzer, AnalyzerError, LlmRejectedError, LlmUnavailableError
from .announce import Announcer
from .baseline import assess, describe as describe_anomaly, heuristic_bonus, record_batch
from .calibration import calibrate, similar_reviews, situation
from .context import EventUpdate, StageContext
from .events import event_from_row
from .jobs import Job, JobKind, JobResult, PermanentJobError, add_job
from .llm_provider import PromptImage
from .models import Camera, Detection, EventSource, SecurityEvent
from .monitor import HealthMonitor
from .payloads import AnalyzePayload, RescorePayload, payload_of
from .prompts import AnalysisRequest
from .records import (
    apply_judgement,
    camera_and_detections,
    incident,
    link,
    new_event,
    peak_of,
    store_event,
    update,
)
from .risk import OBJECT_WEIGHTS, UNKNOWN_WEIGHT, Verdict, class_facts, heuristic_verdict
from .storage import EventDetectionRow, EventRow
from .verdict_check import check_verdict
from .vision_frames import incident_frames

_LOGGER = logging.getLogger(__name__)


class AnalyzeStage:
    """Judges incidents (and version-3 batches) with the LLM or the heuristic."""

    def __init__(
        self,
        ctx: StageContext,
        analyzer: Analyzer | None,
        health: HealthMonitor,
        announcer: Announcer,
    ) -> None:
        """Use the shared context; analyzer is None when no LLM is set (the heuristic judges)."""
        self._ctx = ctx
        self._analyzer = analyzer
        self._health = health
        self._announcer = announcer

    def available(self) -> bool:
        """Return whether an LLM server may be asked (some breaker lets a request by)."""
        return self._analyzer is not None and self._analyzer.pool.would_allow()

    def is_outage(self, error: BaseException) -> bool:
        """Return whether a failure is the LLM's outage: no server is considered up."""
        return (
            isinstance(error, AnalyzerError)
            and self._analyzer is not None
            and not self._analyzer.pool.any_closed()
        )

    async def judge(self, request: AnalysisRequest) -> Verdict:
        """Ask the LLM for a verdict, timing the requests it answers (the latency sensors).

        The incident's pictures go with the detections (as many as the options allow); a
        server that takes none gets the text alone, and a picture that cannot be read is left
        out, so pictures never cost a verdict. The verdict comes checked against the
        detections: what no detector saw is marked, and one that denies what it saw is flagged
        and scored no lower than the heuristic (verdict_check).
        """
        if self._analyzer is None:
            raise LlmUnavailableError("no LLM server is set: scored by the heuristic")
        ctx = self._ctx
        options = ctx.config.options
        images: tuple[PromptImage, ...] = ()
        if options.llm_frames and self._analyzer.may_see():
            images = await incident_frames(
                request.detections,
                limit=options.llm_frames,
                long_side=options.llm_frame_size,
                tz=ctx.config.local_tz,
                run_blocking=ctx.run_blocking,
                camera_root=ctx.config.camera_root,
                ffmpeg=ctx.config.ffmpeg,
            )
        started = time.perf_counter()
        verdict, url = await self._analyzer.analyze_at(request, images)
        self._health.record_llm(url, (time.perf_counter() - started) * 1000.0)
        # Checked against the detections before anyone reads it (see verdict_check).
        severity = options.severity
        return check_verdict(
            verdict, request.detections, heuristic_verdict(request, severity), severity
        )

    def rescore_wanted(self, verdict: Verdict) -> bool:
        """Return whether a verdict is the heuristic's, to be judged again once the LLM is back."""
        return (
            verdict.source is EventSource.HEURISTIC
            and self._ctx.config.options.rescore_minutes > 0
            and self._analyzer is not None
        )

    def request(
        self,
        camera: Camera,
        started_at: datetime,
        ended_at: datetime,
        detections: Sequence[Detection],
        *,
        is_fast_path: bool,
    ) -> AnalysisRequest:
        """Return what the LLM is asked about a camera's detections over a span."""
        return AnalysisRequest(
            camera_name=camera.name,
            started_at=started_at,
            ended_at=ended_at,
            local_tz=self._ctx.config.local_tz,
            detections=tuple(detections),
            is_fast_path=is_fast_path,
            zone_descriptions=self._ctx.zones.descriptions(camera.camera_id),
            notes=self._ctx.notes.get(camera.camera_id, ""),
        )

    async def handle(self, job: Job) -> JobResult:
        """Judge an incident, or a version-3 job's detections into an event of their own."""
        payload = payload_of(AnalyzePayload, job)
        if payload.event_id is not None and payload.batch_key is not None:
            return await self._judge_incident(payload, payload.event_id, payload.batch_key)
        ctx = self._ctx
        camera, detections = await ctx.db.run(
            lambda s: camera_and_detections(
                s, payload.camera_id, payload.detection_ids, payload.batch_key
            )
        )
        if camera is None:
            raise PermanentJobError(f"camera {payload.camera_id} is no longer in the database")
        request = self.request(
            camera,
            payload.started_at,
            payload.ended_at,
            detections,
            is_fast_path=payload.fast_path,
        )
        request, verdict, anomaly, counts = await self._verdict(camera, request)
        event = _with_anomaly(new_event(camera, request, verdict, detections), anomaly)
        rescore = self.rescore_wanted(verdict)

        def store(session: Session) -> SecurityEvent:
            now = ctx.clock()
            store_event(session, event, now)
            if rescore:
                add_job(
                    session, JobKind.RESCORE, RescorePayload(event_id=event.event_id).to_json(), now
                )
            if not request.is_fast_path:  # its detections come again with their batch
                self._learn(session, camera, counts, request, now)
            return event

        def after(stored: SecurityEvent) -> None:
            if rescore:
                ctx.queue.notify(JobKind.RESCORE)
            self._announcer.announce(camera, stored, detections)

        return JobResult(store=store, after=after)

    async def _judge_incident(
        self, payload: AnalyzePayload, event_id: str, batch_key: str
    ) -> JobResult:
        """Judge an incident again with everything seen so far, and store the new verdict."""
        ctx = self._ctx
        final = payload.final
        found = await ctx.db.run(lambda s: incident(s, payload.camera_id, event_id, batch_key))
        if found is None:
            _LOGGER.debug("Not judging incident %s: deleted meanwhile", event_id)
            return JobResult()
        camera, old, detections = found
        if not detections:
            return JobResult()
        await self._announcer.announced(event_id)  # no update before the incident itself
        ended_at = max(d.detected_at or old.ended_at for d in detections)
        request = self.request(
            camera, old.started_at, ended_at, detections, is_fast_path=payload.fast_path
        )
        request, verdict, anomaly, counts = await self._verdict(camera, request)
        judged = new_event(camera, request, verdict, detections, event_id=event_id)
        rescore = final and self.rescore_wanted(verdict)

        def store(session: Session) -> EventUpdate | None:
            now = ctx.clock()
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
            had_peak = peak_of(row) is not None
            rose = apply_judgement(row, judged, final=final, now=now)
            linked = set(
                session.scalars(
                    select(EventDetectionRow.detection_id).where(
                        EventDetectionRow.event_id == event_id
                    )
                )
            )
            new_links = [i for i in judged.detection_ids if i not in linked]
            link(session, event_id, new_links)
            if rescore:
                add_job(session, JobKind.RESCORE, RescorePayload(event_id=event_id).to_json(), now)
            if final:
                self._learn(session, camera, counts, request, now)
            session.flush()
            event = _with_anomaly(
                event_from_row(row, tuple(sorted(linked | set(new_links)))), anomaly
            )
            return update(previous, event, level_rose=rose and had_peak)

        def after(update_: EventUpdate | None) -> None:
            if rescore:
                ctx.queue.notify(JobKind.RESCORE)
            if update_ is None:
                return
            if update_.changed:
                ctx.callbacks.event_updated(camera, update_)
            if final and not update_.event.ongoing:
                self._announcer.finish(camera, update_.event, detections, batch_key)

        return JobResult(store=store, after=after)

    async def _verdict(
        self, camera: Camera, request: AnalysisRequest
    ) -> tuple[AnalysisRequest, Verdict, Any, dict[str, int]]:
        """Judge request (the LLM, or the heuristic when it cannot); with the hour's baseline.

        Returns the request as judged (with the baseline's context), the verdict, the baseline's
        assessment (None when unreadable) and the counts it was assessed on.
        """
        ctx = self._ctx
        detections = list(request.detections)
        # How unusual this is for the hour: read before the batch itself joins the baseline.
        counts = {fact.label: fact.at_once for fact in class_facts(detections)}
        try:
            anomaly = await ctx.db.run(
                lambda session: assess(
                    session,
                    camera.camera_id,
                    counts,
                    started_at=request.started_at,
                    tz=ctx.config.local_tz,
                    now=ctx.clock(),
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
            verdict = await self.judge(request)
        except LlmUnavailableError as err:
            _LOGGER.debug("LLM unavailable (%s): scoring %s heuristically", err, camera.name)
            verdict = heuristic_verdict(request, ctx.config.options.severity)
        except LlmRejectedError as err:
            # The server answered and refused this batch (400: a prompt it cannot take); asking
            # again would be refused again, so the event is scored without it.
            _LOGGER.warning(
                "The LLM refused the batch of %s (%s); scored heuristically", camera.name, err
            )
            verdict = heuristic_verdict(request, ctx.config.options.severity)
        verdict = await self.calibrated(camera, request, verdict)
        return request, verdict, anomaly, counts

    async def calibrated(
        self, camera: Camera, request: AnalysisRequest, verdict: Verdict
    ) -> Verdict:
        """Return verdict moved by the user's reviews of similar incidents (see calibration).

        A calibration that cannot be read (the database failing) leaves the verdict as it is:
        the verdict never waits on its calibration.
        """
        ctx = self._ctx
        tz = ctx.config.local_tz
        where = situation(
            camera.camera_id,
            [d.label for d in request.detections],
            [d.zone for d in request.detections if d.zone],
            request.started_at,
            tz,
        )
        spots = ctx.spots.get(camera.camera_id, ())
        try:
            found = await ctx.db.run(
                lambda session: similar_reviews(
                    session, where, before=request.started_at, tz=tz, spots=spots
                )
            )
        except Exception:
            _LOGGER.exception("Cannot read the reviews that calibrate %s", camera.name)
            return verdict
        return calibrate(verdict, found, ctx.config.options.severity, where.words(camera.name))

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
            tz=self._ctx.config.local_tz,
            now=now,
        )

    def rescore_limit(self) -> timedelta:
        """Return how long after it was stored a heuristic's verdict is still worth re-scoring."""
        return timedelta(minutes=self._ctx.config.options.rescore_minutes)


def _with_anomaly(event: SecurityEvent, anomaly: Any) -> SecurityEvent:
    """Return event with the baseline's assessment (how unusual it was), when there is one."""
    if anomaly is None:
        return event
    return replace(
        event,
        anomaly_score=round(anomaly.score, 2),
        anomaly_note=describe_anomaly(anomaly),
        anomaly_learning=anomaly.learning,
    )


def _importance(label: str) -> float:
    """Return how much an unusual count of label weighs, next to unusual people (1)."""
    return OBJECT_WEIGHTS.get(label, UNKNOWN_WEIGHT) / OBJECT_WEIGHTS["person"]
