"""Learned spots: places where the user's false alarms keep landing (a statue, a coat, a glare).

The boxes of the detections of incidents reviewed as false alarms are grouped per camera and
class: boxes that overlap by CLUSTER_IOU or more are one place. A place that MIN_EVENTS
different false alarms share is a learned spot. A new detection of the same class whose box
matches a spot closely (SPOT_IOU, intersection over union) is that known object: it is stored,
counted and shown as suppressed, and opens no incident. Everything else is judged as usual.

It never hides a threat: a detection beside the statue (a person standing next to it) overlaps
the spot far less than SPOT_IOU and is judged; a place where an incident was reviewed as missed
or confirmed as a threat (a high or critical verdict reviewed as right) is never a spot;
reset_learning and forgetting spots (spots_since) start over.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .models import RiskLevel
from .schema import CameraRow, DetectionRow, EventDetectionRow, EventRow

SPOT_IOU: Final = 0.7
"""How closely a new box must match a spot to be taken for the known object."""
CLUSTER_IOU: Final = 0.5
"""How much two false alarms' boxes overlap to be one place."""
THREAT_IOU: Final = 0.3
"""A place that overlaps a real threat's box this much is never a spot."""
MIN_EVENTS: Final = 2
"""Different false alarms a place needs to become a spot."""
BOXES_READ: Final = 5000
"""The latest reviewed detections read per camera to learn its spots (one query)."""

CONFIRMED: Final = frozenset({RiskLevel.HIGH.value, RiskLevel.CRITICAL.value})
"""Levels whose "looks right" confirms a threat: such a place is never a spot (and calibration
raises similar verdicts)."""

type Box = tuple[float, float, float, float]
"""Left, top, width, height as fractions of the frame (0-1), so frame sizes may differ."""


def iou(a: Box, b: Box) -> float:
    """Return the intersection over union of two boxes (0 when they do not overlap)."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if right <= left or bottom <= top:
        return 0.0
    inter = (right - left) * (bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def fraction_box(pixels: Box, frame_width: int, frame_height: int) -> Box | None:
    """Return a pixel box (left, top, width, height) as fractions of its frame.

    None without a frame size, or for an empty box.
    """
    x, y, w, h = pixels
    if frame_width <= 0 or frame_height <= 0 or w <= 0 or h <= 0:
        return None
    return (x / frame_width, y / frame_height, w / frame_width, h / frame_height)


@dataclass(frozen=True, slots=True)
class Spot:
    """One learned spot of a camera."""

    camera_id: str
    label: str
    box: Box
    events: int
    """The false alarms whose detections made it."""

    def as_dict(self) -> dict[str, Any]:
        """Return the spot as plain data (the action's answer)."""
        left, top, width, height = (round(value, 4) for value in self.box)
        return {
            "camera": self.camera_id,
            "label": self.label,
            "box": {"x": left, "y": top, "w": width, "h": height},
            "false_alarms": self.events,
        }


@dataclass(slots=True)
class _Place:
    label: str
    boxes: list[Box] = field(default_factory=list)
    events: set[str] = field(default_factory=set)

    def box(self) -> Box:
        count = len(self.boxes)
        return (
            sum(box[0] for box in self.boxes) / count,
            sum(box[1] for box in self.boxes) / count,
            sum(box[2] for box in self.boxes) / count,
            sum(box[3] for box in self.boxes) / count,
        )


def places(found: Iterable[tuple[str, Box, str]]) -> list[_Place]:
    """Group (class, box, event) into places: a box joins the first like place of its class."""
    grouped: list[_Place] = []
    for label, box, event_id in found:
        for place in grouped:
            if place.label == label and iou(place.box(), box) >= CLUSTER_IOU:
                place.boxes.append(box)
                place.events.add(event_id)
                break
        else:
            grouped.append(_Place(label, [box], {event_id}))
    return grouped


def learn_spots(session: Session, camera_id: str) -> tuple[Spot, ...]:
    """Return a camera's learned spots from its reviewed incidents; in the database thread.

    Only reviews made since the camera's learning or spots were last reset count.
    """
    camera = session.get(CameraRow, camera_id)
    since = None
    if camera is not None:
        marks = [mark for mark in (camera.learning_since, camera.spots_since) if mark is not None]
        since = max(marks) if marks else None
    rows = session.execute(
        select(
            DetectionRow.label,
            DetectionRow.x,
            DetectionRow.y,
            DetectionRow.w,
            DetectionRow.h,
            DetectionRow.frame_width,
            DetectionRow.frame_height,
            EventRow.event_id,
            EventRow.dismissed,
            EventRow.missed,
            EventRow.risk_level,
        )
        .join(EventDetectionRow, EventDetectionRow.detection_id == DetectionRow.detection_id)
        .join(EventRow, EventRow.event_id == EventDetectionRow.event_id)
        .where(
            EventRow.camera_id == camera_id,
            EventRow.reviewed.is_(True),
            *(() if since is None else (EventRow.reviewed_at >= since,)),
        )
        .order_by(EventRow.reviewed_at.desc())
        .limit(BOXES_READ)
    ).all()
    false_alarms: list[tuple[str, Box, str]] = []
    threats: list[tuple[str, Box]] = []
    for row in rows:
        box = fraction_box((row.x, row.y, row.w, row.h), row.frame_width, row.frame_height)
        if box is None:
            continue
        if row.dismissed:
            false_alarms.append((row.label, box, row.event_id))
        elif row.missed or row.risk_level in CONFIRMED:
            threats.append((row.label, box))
    spots = []
    for place in places(false_alarms):
        if len(place.events) < MIN_EVENTS:
            continue
        box = place.box()
        if any(label == place.label and iou(box, seen) >= THREAT_IOU for label, seen in threats):
            continue
        spots.append(Spot(camera_id, place.label, box, len(place.events)))
    return tuple(spots)


def matching_spot(label: str, box: Box | None, spots: Sequence[Spot]) -> Spot | None:
    """Return the spot a detection is taken for: same class, box matching by SPOT_IOU."""
    if box is None:
        return None
    best: Spot | None = None
    best_iou = SPOT_IOU
    for spot in spots:
        if spot.label == label and (overlap := iou(spot.box, box)) >= best_iou:
            best, best_iou = spot, overlap
    return best


def forget_spots(session: Session, *, camera_id: str, now: datetime) -> bool:
    """Forget a camera's learned spots (false alarms reviewed since now teach new ones)."""
    camera = session.get(CameraRow, camera_id)
    if camera is None:
        return False
    camera.spots_since = now
    return True


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A detection taken for a learned spot: what a search shows of it."""

    camera_id: str
    label: str
    confidence: float
    box: Box | None
    detected_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """Return it as plain data (the search's answer)."""
        box = (
            None
            if self.box is None
            else dict(zip(("x", "y", "w", "h"), (round(v, 4) for v in self.box), strict=True))
        )
        return {
            "camera": self.camera_id,
            "label": self.label,
            "confidence": round(self.confidence, 3),
            "box": box,
            "detected_at": self.detected_at.isoformat(),
        }


def suppressed_detections(
    session: Session,
    *,
    camera_ids: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> tuple[int, list[Suppressed]]:
    """Return how many detections were taken for learned spots, and the latest limit of them.

    Of the cameras given (every camera with none) from start (inclusive) to end (exclusive),
    by when they were detected. Runs in the database thread.
    """
    where: list[ColumnElement[bool]] = [DetectionRow.suppressed.is_(True)]
    if camera_ids:
        where.append(DetectionRow.camera_id.in_(camera_ids))
    if start is not None:
        where.append(DetectionRow.detected_at >= start)
    if end is not None:
        where.append(DetectionRow.detected_at < end)
    total = session.scalar(select(func.count()).select_from(DetectionRow).where(*where)) or 0
    rows = session.execute(
        select(
            DetectionRow.camera_id,
            DetectionRow.label,
            DetectionRow.confidence,
            DetectionRow.x,
            DetectionRow.y,
            DetectionRow.w,
            DetectionRow.h,
            DetectionRow.frame_width,
            DetectionRow.frame_height,
            DetectionRow.detected_at,
        )
        .where(*where)
        .order_by(DetectionRow.detected_at.desc(), DetectionRow.detection_id.desc())
        .limit(limit)
    ).all()
    return int(total), [
        Suppressed(
            camera_id=row.camera_id,
            label=row.label,
            confidence=row.confidence,
            box=fraction_box((row.x, row.y, row.w, row.h), row.frame_width, row.frame_height),
            detected_at=row.detected_at,
        )
        for row in rows
    ]
