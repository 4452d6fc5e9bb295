"""Stored events and detections as the pipeline's models, the one place rows become them.

Searches (event_search.py), reviews and the media browser (events.py), the stages' records and
the restored counts all hand out SecurityEvent and Detection, never ORM rows bound to a session;
kept apart so each of them converts a row the same way without importing the others.
"""

from .models import BoundingBox, Detection, EventSource, RiskLevel, SecurityEvent, VerdictDetails
from .schema import DetectionRow, EventRow


def detection_from_row(row: DetectionRow, path: str) -> Detection:
    """Return a stored detection as the pipeline's model; path is its upload's."""
    return Detection(
        detection_id=row.detection_id,
        media_id=row.media_id,
        camera_id=row.camera_id,
        label=row.label,
        confidence=row.confidence,
        bbox=BoundingBox(x=row.x, y=row.y, w=row.w, h=row.h),
        detected_at=row.detected_at,
        frame_width=row.frame_width,
        frame_height=row.frame_height,
        frame_time=row.frame_time,
        path=path,
        zone=row.zone,
    )


def event_from_row(row: EventRow, detection_ids: tuple[int, ...] = ()) -> SecurityEvent:
    """Return the stored event as the pipeline's model."""
    return SecurityEvent(
        event_id=row.event_id,
        camera_id=row.camera_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        risk_score=row.risk_score,
        risk_level=RiskLevel(row.risk_level),
        summary=row.summary,
        reasoning=row.reasoning,
        object_types=tuple(row.object_types),
        detection_count=row.detection_count,
        is_fast_path=row.is_fast_path,
        source=EventSource(row.source),
        detection_ids=detection_ids,
        reviewed=row.reviewed,
        dismissed=row.dismissed,
        missed=bool(row.missed),
        review_note=row.review_note,
        zones=tuple(row.zones or ()),
        keep=row.keep,
        ongoing=bool(row.ongoing),
        details=VerdictDetails.from_dict(row.details),
        raw_score=row.raw_score,
        calibration=row.calibration or "",
    )


def details_json(details: VerdictDetails | None) -> dict[str, object] | None:
    """Return a verdict's details as the row stores them (None for a heuristic verdict)."""
    return None if details is None else details.as_dict()
