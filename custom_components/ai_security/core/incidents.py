"""The incidents stage: an upload's detections stored, and its camera's incident opened or grown.

One open incident per camera (a visit; incident_rows.py keeps its row, batcher.py its timers). In
one transaction, with the detect job's completion: the detections (each with its zone), the
camera's batch grown or opened, and, when it opened, the incident's event with the heuristic's
instant verdict (the phone must not wait for the LLM), plus an analyze job when a fast-path
object asks for the LLM at once. After the commit: the batch's timer, the host told of the
detections, and a new incident announced with its own picture (announce.py).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from .annotate import KeyFrameCanvas
from .announce import Announcer
from .batcher import Batcher
from .calibration import calibrate, similar_reviews, situation
from .context import StageContext, zone_name
from .detector import DetectorResult, Found
from .incident_rows import OpenBatch, add_to_batch, claim_fast
from .jobs import JobKind, JobResult, add_job
from .learned_spots import Spot, fraction_box, matching_spot
from .models import Camera, Detection, SecurityEvent
from .payloads import AnalyzePayload
from .prompts import AnalysisRequest
from .records import new_event, store_event
from .risk import heuristic_verdict
from .storage import DetectionRow

_INSERT_DETECTIONS = insert(DetectionRow).returning(
    DetectionRow.detection_id, sort_by_parameter_order=True
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Detected:
    """What the detect stage found in one upload (or a clip's key frame)."""

    camera_id: str
    media_id: int
    path: str
    width: int
    height: int
    frame_time: float | None
    """Seconds into the clip of the frame looked at; None for an image."""
    result: DetectorResult
    """The detector's answer, one box per object already."""
    image: bytes | None = None
    """The picture the detector was sent: an incident it opens is drawn from it."""
    canvas: asyncio.Future[KeyFrameCanvas] | None = None
    """Its key frame, decoding since the detector was asked (a camera with no incident open)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Stored:
    detections: list[Detection]
    batch: OpenBatch | None
    fast_path_jobs: int
    opened: SecurityEvent | None = None
    """The incident these detections opened, with its instant verdict."""
    closed_previous: bool = False
    """Whether the camera's previous incident closed at its cap (its final judgement queued)."""
    suppressed: list[Detection] = field(default_factory=list)
    """Detections taken for a learned spot, stored apart."""


class IncidentStage:
    """Stores detections into their camera's incident, opening one when none is open."""

    def __init__(
        self, ctx: StageContext, batcher: Batcher, announcer: Announcer, *, judge_at_once: bool
    ) -> None:
        """Use the shared context; judge_at_once: an LLM is set, so fast-path objects ask it."""
        self._ctx = ctx
        self._batcher = batcher
        self._announcer = announcer
        self._judge_at_once = judge_at_once

    def store(self, found: Detected) -> JobResult:
        """Return the detect job's result: its transaction and what follows the commit."""
        ctx = self._ctx
        now = ctx.clock()
        options = ctx.config.options
        fast_types = set(options.fast_path_objects)
        camera_id = found.camera_id
        # Detections taken for a learned spot (a statue the user dismissed twice) are stored
        # and counted apart: they join no incident. The others go on as usual.
        found, suppressed = _split_learned(found, ctx.spots.get(camera_id, ()))
        result = found.result
        zone_map = ctx.zones.of(camera_id)
        zones = [
            None
            if zone_map is None
            else zone_name(
                zone_map.zone_for(
                    Detection(
                        label=item.label,
                        confidence=item.confidence,
                        bbox=item.bbox,
                        frame_width=found.width,
                        frame_height=found.height,
                    )
                )
            )
            for item in result.detections
        ]
        camera = ctx.cameras.get(camera_id) or Camera(
            camera_id=camera_id, name=camera_id, folder=camera_id
        )
        judge_at_once = self._judge_at_once

        def store(session: Session) -> _Stored:
            hidden = _insert_suppressed(session, suppressed, now) if suppressed else []
            if not result.detections:
                return _Stored(detections=[], batch=None, fast_path_jobs=0, suppressed=hidden)
            fast_found = any(
                item.label in fast_types and item.confidence >= options.fast_path_confidence
                for item in result.detections
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
            detections = _insert_detections(session, found, zones, batch.batch_key, now)
            opened: SecurityEvent | None = None
            judge = False
            if change.opened and batch.event_id is not None:
                # The incident opens with an instant verdict: the phone must not wait for the LLM.
                opened = self._open(session, camera, batch, detections, now)
                judge = fast_found and judge_at_once
            elif batch.event_id is not None and fast_found and not batch.fast_judged:
                # Someone appeared in an incident that began with a car: ask at once.
                judge = claim_fast(session, batch)
            if judge:
                payload = AnalyzePayload(
                    camera_id=camera_id,
                    started_at=batch.opened_at,
                    ended_at=now,
                    batch_key=batch.batch_key,
                    event_id=batch.event_id,
                    final=False,
                    fast_path=True,
                    judged=batch.detection_count,
                )
                add_job(session, JobKind.ANALYZE, payload.to_json(), now)
            return _Stored(
                detections=detections,
                batch=batch,
                fast_path_jobs=1 if judge else 0,
                opened=opened,
                closed_previous=change.closed is not None,
                suppressed=hidden,
            )

        def after(stored: _Stored) -> None:
            if stored.suppressed and (known := ctx.cameras.get(camera_id)) is not None:
                ctx.callbacks.suppressed(known, stored.suppressed)
            if stored.batch is not None:
                self._batcher.track(stored.batch)
            if stored.fast_path_jobs or stored.closed_previous:
                ctx.queue.notify(JobKind.ANALYZE)
            if stored.detections and (known := ctx.cameras.get(camera_id)) is not None:
                ctx.callbacks.detections(known, stored.detections)
                if stored.opened is not None:
                    picture = (
                        None if found.image is None else (found.path, found.frame_time, found.image)
                    )
                    self._announcer.announce(
                        known, stored.opened, stored.detections, picture, found.canvas
                    )
                    return
            if found.canvas is not None:
                found.canvas.cancel()  # no incident opened: the decoded picture is not needed

        return JobResult(store=store, after=after)

    def _open(
        self,
        session: Session,
        camera: Camera,
        batch: OpenBatch,
        detections: list[Detection],
        now: datetime,
    ) -> SecurityEvent:
        """Store a new incident's event with the heuristic's verdict on its first detections.

        The heuristic answers in microseconds, so the incident is announced (and the phone
        notified) at once; the LLM's verdict replaces it moments later (see analyze.py). Like
        every verdict, it is calibrated by the user's reviews of similar incidents first: a
        passer-by dismissed night after night must not ring the phone before the LLM speaks.
        """
        ctx = self._ctx
        request = AnalysisRequest(
            camera_name=camera.name,
            started_at=now,
            ended_at=now,
            local_tz=ctx.config.local_tz,
            detections=tuple(detections),
            is_fast_path=False,
            zone_descriptions=ctx.zones.descriptions(camera.camera_id),
        )
        thresholds = ctx.config.options.severity
        verdict = heuristic_verdict(request, thresholds)
        tz = ctx.config.local_tz
        where = situation(
            camera.camera_id,
            [item.label for item in detections],
            [item.zone for item in detections if item.zone],
            now,
            tz,
        )
        found = similar_reviews(
            session, where, before=now, tz=tz, spots=ctx.spots.get(camera.camera_id, ())
        )
        verdict = calibrate(verdict, found, thresholds, where.words(camera.name))
        event = replace(
            new_event(camera, request, verdict, detections, event_id=batch.event_id),
            ongoing=True,
        )
        store_event(session, event, now)
        return event


def _split_learned(found: Detected, spots: Sequence[Spot]) -> tuple[Detected, Detected | None]:
    """Return found without the detections taken for a learned spot, and those apart."""
    if not spots:
        return found, None
    kept: list[Found] = []
    learned: list[Found] = []
    for item in found.result.detections:
        box = fraction_box(
            (item.bbox.x, item.bbox.y, item.bbox.w, item.bbox.h), found.width, found.height
        )
        (learned if matching_spot(item.label, box, spots) else kept).append(item)
    if not learned:
        return found, None
    return (
        replace(found, result=replace(found.result, detections=tuple(kept))),
        replace(found, result=replace(found.result, detections=tuple(learned))),
    )


def _insert_suppressed(session: Session, found: Detected, now: datetime) -> list[Detection]:
    """Insert detections taken for a learned spot: in no batch, marked suppressed."""
    return _insert_detections(
        session, found, [None] * len(found.result.detections), None, now, suppressed=True
    )


def _insert_detections(
    session: Session,
    found: Detected,
    zones: list[str | None],
    batch_key: str | None,
    now: datetime,
    *,
    suppressed: bool = False,
) -> list[Detection]:
    """Insert an upload's detections into their batch; return them with their new ids."""
    items = found.result.detections
    rows = [
        {
            "zone": zone,
            "media_id": found.media_id,
            "camera_id": found.camera_id,
            "label": item.label,
            "confidence": item.confidence,
            "x": item.bbox.x,
            "y": item.bbox.y,
            "w": item.bbox.w,
            "h": item.bbox.h,
            "frame_width": found.width,
            "frame_height": found.height,
            "frame_time": found.frame_time,
            "detected_at": now,
            "batch_key": batch_key,
            "suppressed": suppressed,
        }
        for item, zone in zip(items, zones, strict=True)
    ]
    ids = session.connection().execute(_INSERT_DETECTIONS, rows).scalars().all()
    return [
        Detection(
            detection_id=detection_id,
            media_id=found.media_id,
            camera_id=found.camera_id,
            label=item.label,
            confidence=item.confidence,
            bbox=item.bbox,
            detected_at=now,
            frame_width=found.width,
            frame_height=found.height,
            frame_time=found.frame_time,
            path=found.path,
            zone=zone,
        )
        for detection_id, item, zone in zip(ids, items, zones, strict=True)
    ]
