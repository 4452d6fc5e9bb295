"""Calibration: the user's reviews of similar incidents move the next verdict, and say why.

A verdict's situation is its camera, its zone, its most important object class and whether it
happened at night. The latest reviews of incidents in the same situation (at most SIMILAR_KEPT,
before this incident) vote: a false alarm pulls the next score down, a missed one (too low)
and a confirmed threat (high or critical, reviewed as right) push it up, and a plain "looks
right" dilutes both. The shift is MAX_SHIFT times the balance of the votes over the number of
reviews plus one, so one review never moves much and a long agreeing run moves up to MAX_SHIFT
points; fewer than MIN_REVIEWS similar reviews move nothing.

A false alarm that learned spots explain (half or more of its detections lie at a spot: the
statue, seen in every upload of a ten-minute incident that someone also walked through) no
longer votes: the spots already keep that object out, and letting it also lower every other
night-time person in the garden would hide the intruder who comes next. Leaving a vote out can
only lower a verdict less, never more.

It never hides a threat: a critical verdict is never lowered, and the model's own score is
kept (raw_score) beside the calibrated one, with the reason in plain words ("lowered by 25:
8 of the last 9 similar night-time person events in Garden were false alarms").
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from .learned_spots import CONFIRMED, Spot, fraction_box, matching_spot
from .models import RiskLevel
from .risk import OBJECT_WEIGHTS, UNKNOWN_WEIGHT, Verdict, is_night, level_for
from .schema import CameraRow, DetectionRow, EventDetectionRow, EventRow
from .settings import SeverityThresholds

MAX_SHIFT: Final = 40
"""The most points calibration moves a score, either way."""
MIN_REVIEWS: Final = 2
"""Similar reviews needed before a verdict is moved at all."""
SIMILAR_KEPT: Final = 20
"""The latest similar reviews that vote: old habits fade as new reviews come."""
REVIEWS_READ: Final = 400
"""The camera's latest reviews read to find the similar ones (one indexed query)."""


@dataclass(frozen=True, slots=True)
class Situation:
    """What makes two incidents similar for calibration."""

    camera_id: str
    zone: str
    """The first zone of the incident ("" outside every zone)."""
    label: str
    """Its most important object class ("" with none)."""
    night: bool

    def words(self, camera_name: str) -> str:
        """Return the situation as a reader says it: "night-time person events in Garden"."""
        when = "night-time" if self.night else "daytime"
        what = f"{self.label} " if self.label else ""
        where = f"{self.zone} of {camera_name}" if self.zone else camera_name
        return f"{when} {what}events in {where}"


def situation(
    camera_id: str,
    object_types: Sequence[str],
    zones: Sequence[str],
    started_at: datetime,
    tz: tzinfo,
) -> Situation:
    """Return an incident's situation from what it holds and when it started."""
    label = max(
        sorted(object_types),
        key=lambda name: OBJECT_WEIGHTS.get(name, UNKNOWN_WEIGHT),
        default="",
    )
    zone = sorted(zones)[0] if zones else ""
    return Situation(camera_id, zone, label, is_night(started_at.astimezone(tz)))


@dataclass(frozen=True, slots=True)
class Calibration:
    """How far similar reviews move a verdict, and why."""

    shift: int = 0
    """Points added to the score (negative: lowered)."""
    reviews: int = 0
    false_alarms: int = 0
    missed: int = 0
    confirmed: int = 0

    def reason(self, words: str) -> str:
        """Return the shift in plain words for the situation's words ("" without a shift)."""
        if not self.shift:
            return ""
        if self.shift < 0:
            count, what = self.false_alarms, "false alarms"
        elif self.missed >= self.confirmed:
            count, what = self.missed, "missed (too low)"
        else:
            count, what = self.confirmed, "confirmed threats"
        return (
            f"{'lowered' if self.shift < 0 else 'raised'} by {abs(self.shift)}: {count} of the "
            f"last {self.reviews} similar {words} were {what}"
        )


NO_CALIBRATION: Final = Calibration()


def similar_reviews(
    session: Session,
    where: Situation,
    *,
    before: datetime,
    tz: tzinfo,
    spots: Sequence[Spot] = (),
) -> Calibration:
    """Return how the camera's latest reviews of similar incidents, before a time, move a verdict.

    Only reviews made since the camera's learning was last reset count (see reset_learning),
    and no false alarm that the camera's learned spots explain (explained_by_spots). Runs in
    the database thread.
    """
    camera = session.get(CameraRow, where.camera_id)
    since = camera.learning_since if camera is not None else None
    reviewed_since = () if since is None else (EventRow.reviewed_at >= since,)
    rows = session.execute(
        select(
            EventRow.event_id,
            EventRow.started_at,
            EventRow.object_types,
            EventRow.zones,
            EventRow.dismissed,
            EventRow.missed,
            EventRow.risk_level,
        )
        .where(
            EventRow.camera_id == where.camera_id,
            EventRow.reviewed.is_(True),
            EventRow.started_at < before,
            *reviewed_since,
        )
        .order_by(EventRow.started_at.desc())
        .limit(REVIEWS_READ)
    ).all()
    similar = [
        row
        for row in rows
        if situation(where.camera_id, row.object_types or (), row.zones or (), row.started_at, tz)
        == where
    ]
    explained = (
        explained_by_spots(session, [row.event_id for row in similar if row.dismissed], spots)
        if spots
        else frozenset()
    )
    false_alarms = missed = confirmed = reviews = 0
    for row in similar:
        if row.event_id in explained:
            continue
        reviews += 1
        if row.dismissed:
            false_alarms += 1
        elif row.missed:
            missed += 1
        elif row.risk_level in CONFIRMED:
            confirmed += 1
        if reviews == SIMILAR_KEPT:
            break
    if reviews < MIN_REVIEWS:
        return Calibration(reviews=reviews)
    balance = missed + confirmed - false_alarms
    return Calibration(
        shift=round(MAX_SHIFT * balance / (reviews + 1)),
        reviews=reviews,
        false_alarms=false_alarms,
        missed=missed,
        confirmed=confirmed,
    )


def explained_by_spots(
    session: Session, event_ids: Sequence[str], spots: Sequence[Spot]
) -> frozenset[str]:
    """Return the events among event_ids with half or more of their detections at spots.

    Runs in the database thread; one query for all of them.
    """
    if not event_ids or not spots:
        return frozenset()
    rows = session.execute(
        select(
            EventDetectionRow.event_id,
            DetectionRow.label,
            DetectionRow.x,
            DetectionRow.y,
            DetectionRow.w,
            DetectionRow.h,
            DetectionRow.frame_width,
            DetectionRow.frame_height,
        )
        .join(DetectionRow, DetectionRow.detection_id == EventDetectionRow.detection_id)
        .where(EventDetectionRow.event_id.in_(event_ids))
    ).all()
    counts: dict[str, list[int]] = {}
    for row in rows:
        box = fraction_box((row.x, row.y, row.w, row.h), row.frame_width, row.frame_height)
        tally = counts.setdefault(row.event_id, [0, 0])
        tally[0] += matching_spot(row.label, box, spots) is not None
        tally[1] += 1
    return frozenset(event_id for event_id, (at, seen) in counts.items() if 2 * at >= seen)


def reset_learning(session: Session, camera_id: str, now: datetime) -> bool:
    """Forget what a camera learned from reviews so far; return whether the camera exists.

    The reviews themselves stay with their events (and in the audit trail); they just no
    longer move the camera's verdicts. Runs in the database thread.
    """
    camera = session.get(CameraRow, camera_id)
    if camera is None:
        return False
    camera.learning_since = now
    return True


def calibrate(
    verdict: Verdict, calibration: Calibration, thresholds: SeverityThresholds, words: str
) -> Verdict:
    """Return verdict moved by calibration, with its own score kept and the reason given.

    A critical verdict is never lowered; a shift that changes nothing leaves it as it was.
    """
    shift = calibration.shift
    if shift < 0 and verdict.risk_level is RiskLevel.CRITICAL:
        return verdict
    score = max(0, min(100, verdict.risk_score + shift))
    if score == verdict.risk_score:
        return verdict
    moved = replace(calibration, shift=score - verdict.risk_score)
    return replace(
        verdict,
        risk_score=score,
        risk_level=level_for(score, thresholds),
        raw_score=verdict.risk_score,
        calibration=moved.reason(words),
    )


__all__ = [
    "NO_CALIBRATION",
    "Calibration",
    "Situation",
    "calibrate",
    "explained_by_spots",
    "reset_learning",
    "similar_reviews",
    "situation",
]
