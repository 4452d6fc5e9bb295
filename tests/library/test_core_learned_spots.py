"""Learned spots on SQLite and a real PostgreSQL server: where false alarms keep landing.

Two false alarms at one place make a spot; one does not; a place where a threat was confirmed
or missed never becomes one; a box beside the spot does not match; forgetting starts over.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from custom_components.ai_security.core.calibration import similar_reviews, situation
from custom_components.ai_security.core.learned_spots import (
    SPOT_IOU,
    forget_spots,
    fraction_box,
    iou,
    learn_spots,
    matching_spot,
)
from custom_components.ai_security.core.storage import (
    CameraRow,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    MediaRow,
)

T0 = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Amsterdam")
STATUE = (400.0, 120.0, 100.0, 240.0)
"""The statue's box in a 640x480 frame."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()

    def camera(session: Session) -> None:
        session.add(CameraRow(camera_id="garden", folder="Garden", name="Garden", created_at=T0))

    await database.run(camera)
    yield database
    await database.close()


async def reviewed(
    db: Database,
    box: tuple[float, float, float, float],
    at: datetime,
    *,
    others: tuple[tuple[float, float, float, float], ...] = (),
    **review: Any,
) -> None:
    """Store an incident of the garden with a person at box (and others), reviewed as said."""

    label = review.pop("label", "person")

    def add(session: Session) -> None:
        media = MediaRow(
            camera_id="garden",
            path=f"Garden/{uuid.uuid4().hex}.jpg",
            sha256=uuid.uuid4().hex * 2,
            media_type="image",
            size=1,
            received_at=at,
        )
        session.add(media)
        session.flush()
        event_id = uuid.uuid4().hex
        session.add(
            EventRow(
                event_id=event_id,
                camera_id="garden",
                started_at=at,
                ended_at=at,
                risk_score=70,
                risk_level=review.pop("level", "medium"),
                summary="s",
                reasoning="r",
                object_types=["person"],
                detection_count=1 + len(others),
                source="llm",
                created_at=at,
                reviewed=True,
                reviewed_at=at + timedelta(minutes=1),
                **review,
            )
        )
        # The first box is of label (a person unless said); the others are people.
        for n, (x, y, w, h) in enumerate((box, *others)):
            detection = DetectionRow(
                media_id=media.media_id,
                camera_id="garden",
                label=label if n == 0 else "person",
                confidence=0.8,
                x=x,
                y=y,
                w=w,
                h=h,
                frame_width=640,
                frame_height=480,
                detected_at=at,
            )
            session.add(detection)
            session.flush()
            session.add(EventDetectionRow(event_id=event_id, detection_id=detection.detection_id))

    await db.run(add)


async def learned(db: Database) -> Any:
    return await db.run(lambda s: learn_spots(s, "garden"))


def test_iou_and_fractions() -> None:
    """Boxes as fractions of their frame; intersection over union of two boxes."""
    assert fraction_box(STATUE, 640, 480) == (0.625, 0.25, 0.15625, 0.5)
    assert fraction_box(STATUE, 0, 480) is None
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0.0
    assert iou((0, 0, 2, 1), (1, 0, 2, 1)) == pytest.approx(1 / 3)


async def test_two_false_alarms_at_one_place_make_a_spot(db: Database) -> None:
    """One false alarm is no spot; a second at nearly the same place is; it matches closely."""
    await reviewed(db, STATUE, T0, dismissed=True)
    assert await learned(db) == ()
    await reviewed(db, (404.0, 118.0, 98.0, 244.0), T0 + timedelta(days=1), dismissed=True)
    (spot,) = await learned(db)
    assert (spot.label, spot.events) == ("person", 2)
    again = fraction_box((402.0, 121.0, 99.0, 239.0), 640, 480)
    assert matching_spot("person", again, [spot]) is spot
    assert matching_spot("cat", again, [spot]) is None  # another class
    beside = fraction_box((300.0, 130.0, 90.0, 230.0), 640, 480)
    assert beside is not None
    assert iou(beside, spot.box) < SPOT_IOU
    assert matching_spot("person", beside, [spot]) is None
    assert matching_spot("person", None, [spot]) is None


async def test_a_place_of_a_real_threat_is_never_a_spot(db: Database) -> None:
    """A missed or confirmed incident at the place cancels the false alarms there."""
    await reviewed(db, STATUE, T0, dismissed=True)
    await reviewed(db, STATUE, T0 + timedelta(days=1), dismissed=True)
    assert len(await learned(db)) == 1
    await reviewed(db, (410.0, 130.0, 90.0, 220.0), T0 + timedelta(days=2), missed=True)
    assert await learned(db) == ()


async def test_a_confirmed_high_verdict_counts_as_a_threat(db: Database) -> None:
    """Looks right on a high verdict at the place: a real threat was there once."""
    await reviewed(db, STATUE, T0, dismissed=True)
    await reviewed(db, STATUE, T0 + timedelta(days=1), dismissed=True)
    await reviewed(db, STATUE, T0 + timedelta(days=2), level="high")
    assert await learned(db) == ()


async def test_forgetting_starts_over(db: Database) -> None:
    """After forget_spots only false alarms reviewed since teach spots again."""
    await reviewed(db, STATUE, T0, dismissed=True)
    await reviewed(db, STATUE, T0 + timedelta(days=1), dismissed=True)
    now = T0 + timedelta(days=3)
    assert await db.run(lambda s: forget_spots(s, camera_id="garden", now=now))
    assert not await db.run(lambda s: forget_spots(s, camera_id="nowhere", now=now))
    assert await learned(db) == ()
    await reviewed(db, STATUE, now + timedelta(hours=1), dismissed=True)
    await reviewed(db, STATUE, now + timedelta(hours=2), dismissed=True)
    assert len(await learned(db)) == 1


async def test_false_alarms_a_spot_explains_no_longer_lower_other_verdicts(db: Database) -> None:
    """The statue's false alarms make a spot and stop voting; a person elsewhere is not lowered.

    Without that, the two reviews that taught the statue would also lower the next night-time
    person anywhere in the garden (an intruder) by 27 points. False alarms elsewhere still vote.
    """
    for night in range(2):
        await reviewed(db, STATUE, T0 + timedelta(days=night), dismissed=True)
    spots = await learned(db)
    assert len(spots) == 1
    where = situation("garden", ["person"], [], T0, TZ)
    later = T0 + timedelta(days=10)

    async def shift(found: Any) -> int:
        calibration = await db.run(
            lambda s: similar_reviews(s, where, before=later, tz=TZ, spots=found)
        )
        return int(calibration.shift)

    assert await shift(()) == -27  # without the spots: 40 * -2 / 3
    assert await shift(spots) == 0  # explained by the statue: they no longer vote
    # A false alarm elsewhere (a shadow at the gate) is not explained, with or without spots;
    # one review alone moves nothing, a second one does.
    await reviewed(db, (20.0, 200.0, 60.0, 120.0), T0 + timedelta(days=3), dismissed=True)
    assert await shift(spots) == 0
    await reviewed(db, (30.0, 300.0, 60.0, 120.0), T0 + timedelta(days=4), dismissed=True)
    assert await shift(spots) == -27
    # Mostly the statue (half its detections at the spot, someone walking by in the rest):
    # explained, no vote. Mostly elsewhere: it votes (3 false alarms of 3: -30).
    walker = (100.0, 200.0, 50.0, 120.0)
    await reviewed(db, STATUE, T0 + timedelta(days=5), others=(walker,), dismissed=True)
    assert await shift(spots) == -27
    await reviewed(db, STATUE, T0 + timedelta(days=6), others=(walker, walker), dismissed=True)
    assert await shift(spots) == -30
