"""What the entities show after a restart: each camera's latest event and today's counts.

Entity state is pushed as the pipeline reports, but a restart must not reset "Detections today" to
zero or forget the last event: this reads them back from the database in one transaction.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .events import detection_from_row, event_from_row
from .models import Detection, SecurityEvent
from .storage import DetectionRow, EventRow, MediaRow


@dataclass(kw_only=True, slots=True)
class CameraActivity:
    """One camera's activity as stored."""

    latest_event: SecurityEvent | None = None
    detections_since: int = 0
    """Detections since the given time (local midnight for the sensors)."""
    suppressed_since: int = 0
    """Detections taken for a learned spot since the given time (not in detections_since)."""
    events_since: int = 0
    last_detections: list[Detection] = field(default_factory=list)
    """The detections of the camera's most recent detected upload."""


def camera_activity(
    session: Session, since: datetime, until: datetime
) -> dict[str, CameraActivity]:
    """Return every camera's latest event, last detections and counts from since until until.

    Events count by when they were stored (as the hub counts them when announced); the caller
    counts what it hears of from `until` on, so nothing is counted twice or missed.
    """
    activity: dict[str, CameraActivity] = {}

    def of(camera_id: str) -> CameraActivity:
        return activity.setdefault(camera_id, CameraActivity())

    for camera_id, suppressed, count in session.execute(
        select(DetectionRow.camera_id, DetectionRow.suppressed, func.count())
        .where(DetectionRow.detected_at >= since, DetectionRow.detected_at < until)
        .group_by(DetectionRow.camera_id, DetectionRow.suppressed)
    ):
        if suppressed:
            of(camera_id).suppressed_since = int(count)
        else:
            of(camera_id).detections_since = int(count)
    for camera_id, count in session.execute(
        select(EventRow.camera_id, func.count())
        .where(EventRow.created_at >= since, EventRow.created_at < until)
        .group_by(EventRow.camera_id)
    ):
        of(camera_id).events_since = int(count)
    # The newest event of each camera: the row whose started_at is the camera's maximum.
    newest = (
        select(EventRow.camera_id, func.max(EventRow.started_at).label("started"))
        .group_by(EventRow.camera_id)
        .subquery()
    )
    for row in session.scalars(
        select(EventRow).join(
            newest,
            (EventRow.camera_id == newest.c.camera_id) & (EventRow.started_at == newest.c.started),
        )
    ):
        current = of(row.camera_id).latest_event
        if current is None or row.ended_at > current.ended_at:  # two started at once: rare
            of(row.camera_id).latest_event = event_from_row(row)
    last_media = (
        select(DetectionRow.camera_id, func.max(DetectionRow.media_id).label("media_id"))
        .where(DetectionRow.suppressed.is_(False))
        .group_by(DetectionRow.camera_id)
        .subquery()
    )
    rows = session.execute(
        select(DetectionRow, MediaRow.path)
        .join(last_media, DetectionRow.media_id == last_media.c.media_id)
        .join(MediaRow, MediaRow.media_id == DetectionRow.media_id)
        .where(DetectionRow.suppressed.is_(False))
        .order_by(DetectionRow.detection_id)
    )
    for detection, path in rows:
        of(detection.camera_id).last_detections.append(detection_from_row(detection, path))
    return activity
