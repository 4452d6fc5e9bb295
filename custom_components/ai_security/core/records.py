"""Security events as the stages build, store and read them: verdict to event, event to row.

The incidents stage stores an incident's first event, the analyze stage judges it again and
the re-score stage once more; they share how an event is made from a verdict, how its row and
its links to the detections it was judged from are written, how what changed is told, and how
an event is read back with its camera and detections. Everything here runs in a database
transaction (the session given) or is pure.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Final
import uuid

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .context import EventUpdate
from .event_rows import details_json
from .events import detection_from_row, event_from_row
from .models import Camera, Detection, RiskLevel, SecurityEvent
from .prompts import AnalysisRequest
from .risk import LEVEL_ORDER, Verdict
from .storage import CameraRow, DetectionRow, EventDetectionRow, EventRow, MediaRow

LEVEL_VALUES: Final = frozenset(level.value for level in RiskLevel)


def camera_of(row: CameraRow) -> Camera:
    """Return the camera a row stores."""
    return Camera(camera_id=row.camera_id, name=row.name, folder=row.folder)


def new_event(
    camera: Camera,
    request: AnalysisRequest,
    verdict: Verdict,
    detections: Sequence[Detection],
    *,
    event_id: str | None = None,
) -> SecurityEvent:
    """Return the event a verdict on request makes (a new id unless event_id is given)."""
    return SecurityEvent(
        event_id=event_id or uuid.uuid4().hex,
        camera_id=camera.camera_id,
        started_at=request.started_at,
        ended_at=request.ended_at,
        risk_score=verdict.risk_score,
        risk_level=verdict.risk_level,
        summary=verdict.summary,
        reasoning=verdict.reasoning,
        object_types=tuple(sorted({d.label for d in detections})),
        detection_count=len(detections),
        is_fast_path=request.is_fast_path,
        source=verdict.source,
        detection_ids=tuple(d.detection_id for d in detections if d.detection_id is not None),
        zones=tuple(sorted({d.zone for d in detections if d.zone})),
        details=verdict.details,
        raw_score=verdict.raw_score,
        calibration=verdict.calibration,
    )


def event_row(event: SecurityEvent, now: datetime) -> EventRow:
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
        details=details_json(event.details),
        raw_score=event.raw_score,
        calibration=event.calibration or None,
    )


def store_event(session: Session, event: SecurityEvent, now: datetime) -> None:
    """Insert a new event's row and its links to the detections it was judged from."""
    session.add(event_row(event, now))
    session.flush()
    link(session, event.event_id, event.detection_ids)


def link(session: Session, event_id: str, detection_ids: Sequence[int]) -> None:
    """Record which detections an event was judged from (nothing to do for none)."""
    if detection_ids:
        session.execute(
            insert(EventDetectionRow),
            [{"event_id": event_id, "detection_id": ident} for ident in detection_ids],
        )


def update(previous: SecurityEvent, event: SecurityEvent, *, level_rose: bool) -> EventUpdate:
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


def peak_of(row: EventRow) -> RiskLevel | None:
    """Return the highest level an event's row has had (None for a row from before peaks)."""
    return RiskLevel(row.peak_level) if row.peak_level in LEVEL_VALUES else None


def apply_judgement(row: EventRow, judged: SecurityEvent, *, final: bool, now: datetime) -> bool:
    """Write an incident's new verdict into its row; return whether its level rose to a new peak.

    judged holds the verdict on every detection so far (its detection_ids).
    """
    peak = peak_of(row)
    rose = peak is None or LEVEL_ORDER.index(judged.risk_level) > LEVEL_ORDER.index(peak)
    row.risk_score = judged.risk_score
    row.risk_level = judged.risk_level.value
    row.summary = judged.summary
    row.reasoning = judged.reasoning
    row.source = judged.source.value
    row.details = details_json(judged.details)
    row.raw_score = judged.raw_score
    row.calibration = judged.calibration or None
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


def camera_and_detections(
    session: Session, camera_id: str, ids: Sequence[int], batch_key: str | None = None
) -> tuple[Camera | None, list[Detection]]:
    """Return a camera and detections (those of a batch, or by id) in the order they came."""
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
    return (camera_of(camera_row) if camera_row is not None else None), detections


def incident(
    session: Session, camera_id: str, event_id: str, batch_key: str
) -> tuple[Camera, SecurityEvent, list[Detection]] | None:
    """Return an incident's camera, its event as stored, and every detection of it so far."""
    row = session.get(EventRow, event_id)
    camera, detections = camera_and_detections(session, camera_id, [], batch_key)
    if row is None or camera is None:
        return None
    return camera, event_from_row(row), detections


def stored_event(
    session: Session, event_id: str
) -> tuple[Camera, SecurityEvent, datetime, list[Detection]] | None:
    """Return an event's camera, the event, when it was stored, and its linked detections."""
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
    _camera_found, detections = camera_and_detections(session, row.camera_id, ids)
    return camera_of(camera_row), event_from_row(row, tuple(ids)), row.created_at, detections
