"""Calibration from the user's reviews, on SQLite and a real PostgreSQL server.

Similar reviewed incidents (same camera, zone, main object class, night or day) move the next
verdict: false alarms down, missed ones and confirmed threats up, with the reason in words; a
critical verdict is never lowered, and too few reviews move nothing.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
import time
from typing import Any
import uuid
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy.orm import Session

from custom_components.ai_security.core.calibration import (
    MAX_SHIFT,
    SIMILAR_KEPT,
    Calibration,
    Situation,
    calibrate,
    reset_learning,
    similar_reviews,
    situation,
)
from custom_components.ai_security.core.models import EventSource, RiskLevel
from custom_components.ai_security.core.pipeline import Pipeline
from custom_components.ai_security.core.risk import Verdict, level_for
from custom_components.ai_security.core.settings import SeverityThresholds
from custom_components.ai_security.core.storage import CameraRow, Database, EventRow
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import Recorder, config, jpeg, wait_until, write
from tests.servers import LlmStub

TZ = ZoneInfo("Europe/Amsterdam")
DEFAULT = SeverityThresholds()
NIGHT = datetime(2026, 11, 10, 2, 30, tzinfo=UTC)  # 03:30 in Amsterdam
DAY = datetime(2026, 11, 10, 13, 0, tzinfo=UTC)
GARDEN_NIGHT_PERSON = Situation("garden", "", "person", night=True)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def add_reviewed(
    db: Database, started_at: datetime, *, camera: str = "garden", **changes: Any
) -> None:
    """Store one reviewed night-time person event of the garden (changes override)."""

    def add(session: Session) -> None:
        values: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "camera_id": camera,
            "started_at": started_at,
            "ended_at": started_at + timedelta(seconds=30),
            "risk_score": 70,
            "risk_level": "high",
            "summary": "A person in the garden",
            "reasoning": "Night.",
            "object_types": ["person"],
            "detection_count": 1,
            "is_fast_path": False,
            "source": "llm",
            "reviewed": True,
            "dismissed": False,
            "created_at": started_at,
        } | changes
        session.add(EventRow(**values))

    await db.run(add)


def verdict(score: int) -> Verdict:
    """Return an LLM verdict of score."""
    return Verdict(
        risk_score=score,
        risk_level=level_for(score, DEFAULT),
        summary="A person in the garden",
        reasoning="Night.",
        source=EventSource.LLM,
    )


async def reviews(db: Database, where: Situation = GARDEN_NIGHT_PERSON) -> Calibration:
    """Return the calibration the stored reviews give where, for an incident after them all."""
    later = NIGHT + timedelta(days=30)
    return await db.run(lambda s: similar_reviews(s, where, before=later, tz=TZ))


def test_the_situation_is_camera_zone_main_object_and_night() -> None:
    """The most important class names it (a person before a cat), the first zone by name."""
    found = situation("garden", ["cat", "person", "cat"], ["Path", "Lawn"], NIGHT, TZ)
    assert found == Situation("garden", "Lawn", "person", night=True)
    assert situation("garden", [], [], DAY, TZ) == Situation("garden", "", "", night=False)
    assert found.words("Garden") == "night-time person events in Lawn of Garden"
    assert GARDEN_NIGHT_PERSON.words("Garden") == "night-time person events in Garden"


async def test_false_alarms_lower_the_next_similar_verdict_and_say_why(db: Database) -> None:
    """Eight false alarms of nine similar reviews (one confirmed): lowered by 28, in words."""
    for day in range(8):
        await add_reviewed(db, NIGHT + timedelta(days=day), dismissed=True)
    await add_reviewed(db, NIGHT + timedelta(days=8))  # looked right (high: a confirmed threat)
    found = await reviews(db)
    assert (found.reviews, found.false_alarms, found.confirmed, found.missed) == (9, 8, 1, 0)
    assert found.shift == round(MAX_SHIFT * (1 - 8) / 10) == -28
    moved = calibrate(verdict(72), found, DEFAULT, GARDEN_NIGHT_PERSON.words("Garden"))
    assert (moved.risk_score, moved.risk_level, moved.raw_score) == (44, RiskLevel.MEDIUM, 72)
    assert moved.calibration == (
        "lowered by 28: 8 of the last 9 similar night-time person events in Garden were "
        "false alarms"
    )


async def test_missed_ones_raise_the_next_similar_verdict(db: Database) -> None:
    """Three reviews saying the verdict was too low: the next is raised."""
    for day in range(3):
        await add_reviewed(db, NIGHT + timedelta(days=day), missed=True, risk_level="low")
    found = await reviews(db)
    assert found.shift == 30
    moved = calibrate(verdict(20), found, DEFAULT, "night-time person events in Garden")
    assert (moved.risk_score, moved.raw_score) == (50, 20)
    assert moved.calibration.startswith("raised by 30: 3 of the last 3 similar")
    assert moved.calibration.endswith("were missed (too low)")


async def test_other_situations_do_not_count(db: Database) -> None:
    """Daytime, another class, another zone or another camera: not similar."""
    await add_reviewed(db, DAY, dismissed=True)
    await add_reviewed(db, NIGHT, dismissed=True, object_types=["cat"])
    await add_reviewed(db, NIGHT, dismissed=True, zones=["Lawn"])
    await add_reviewed(db, NIGHT, dismissed=True, camera="drive")
    await add_reviewed(db, NIGHT, dismissed=True, reviewed=False)  # not reviewed
    found = await reviews(db)
    assert found.reviews == 0
    assert found.shift == 0


async def test_one_review_moves_nothing_and_old_ones_fade(db: Database) -> None:
    """Fewer than two similar reviews: no shift. Only the latest SIMILAR_KEPT vote."""
    await add_reviewed(db, NIGHT, dismissed=True)
    assert (await reviews(db)).shift == 0
    # Many old false alarms, then SIMILAR_KEPT recent confirmations: the recent ones decide.
    for day in range(1, 30):
        await add_reviewed(db, NIGHT + timedelta(hours=day), dismissed=True)
    for day in range(SIMILAR_KEPT):
        await add_reviewed(db, NIGHT + timedelta(days=2 + day))
    found = await reviews(db)
    assert (found.reviews, found.false_alarms, found.confirmed) == (SIMILAR_KEPT, 0, SIMILAR_KEPT)
    assert found.shift > 0


async def test_reviews_after_the_incident_do_not_count(db: Database) -> None:
    """An incident is calibrated by what was reviewed before it started, never after."""
    for day in range(3):
        await add_reviewed(db, NIGHT + timedelta(days=day), dismissed=True)
    early = await db.run(
        lambda s: similar_reviews(s, GARDEN_NIGHT_PERSON, before=NIGHT + timedelta(hours=1), tz=TZ)
    )
    assert early.reviews == 1
    assert early.shift == 0


def test_a_critical_verdict_is_never_lowered() -> None:
    """However many false alarms: critical stays critical, with its score, and no reason."""
    lots = Calibration(shift=-40, reviews=20, false_alarms=20)
    critical = verdict(95)
    assert critical.risk_level is RiskLevel.CRITICAL
    assert calibrate(critical, lots, DEFAULT, "x") is critical
    # A raise still applies to a critical one (up to 100), and clamps.
    raised = calibrate(verdict(90), Calibration(shift=20, reviews=3, missed=3), DEFAULT, "x")
    assert (raised.risk_score, raised.raw_score) == (100, 90)
    assert raised.calibration.startswith("raised by 10:")  # by what it really moved


def test_no_shift_leaves_the_verdict_as_it_is() -> None:
    """Without a shift (or one that moves nothing at 0), the verdict is the same object."""
    low = verdict(0)
    assert calibrate(low, Calibration(shift=-10, reviews=3, false_alarms=3), DEFAULT, "x") is low
    assert calibrate(verdict(50), Calibration(), DEFAULT, "x").raw_score is None


async def test_a_reset_forgets_the_reviews_made_before_it(db: Database) -> None:
    """After reset_learning only reviews made since count; the reviews themselves stay."""

    def add_camera(session: Session) -> None:
        session.add(CameraRow(camera_id="garden", folder="Garden", name="Garden", created_at=NIGHT))

    await db.run(add_camera)
    for day in range(3):
        at = NIGHT + timedelta(days=day)
        await add_reviewed(db, at, dismissed=True, reviewed_at=at + timedelta(hours=1))
    assert (await reviews(db)).shift == -30
    reset_at = NIGHT + timedelta(days=5)
    assert await db.run(lambda s: reset_learning(s, "garden", reset_at))
    assert not await db.run(lambda s: reset_learning(s, "nowhere", reset_at))
    assert (await reviews(db)).reviews == 0
    # An old incident reviewed after the reset counts again.
    await add_reviewed(db, NIGHT, dismissed=True, reviewed_at=reset_at + timedelta(hours=1))
    await add_reviewed(db, NIGHT, dismissed=True, reviewed_at=reset_at + timedelta(hours=2))
    assert (await reviews(db)).shift == -27


async def test_the_instant_verdict_is_calibrated_too(
    tmp_path: Path, sqlite_url: str, llm_stub: LlmStub
) -> None:
    """An incident opens with the heuristic's verdict, already moved by similar reviews.

    It is what rings the phone at once: three false alarms of night-time people at the front
    door must lower it as they lower the LLM's verdict that follows.
    """
    db = Database(sqlite_url)
    await db.start()
    for night in range(3):
        await add_reviewed(
            db, NIGHT - timedelta(days=night + 1), camera="front_door", dismissed=True
        )
    await db.close()
    detector = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.8, [100, 80, 60, 140])))
    )
    await detector.start()
    root = tmp_path / "cameras"
    root.mkdir()
    recorder = Recorder()
    began = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            pipeline = Pipeline(
                replace(config(root, sqlite_url, detector.url, llm_stub.url), local_tz=TZ),
                session,
                callbacks=recorder.callbacks(),
                # Night, as time goes by: a stopped clock would never close the incident.
                clock=lambda: NIGHT + timedelta(seconds=time.monotonic() - began),
            )
            await pipeline.start()
            try:
                await asyncio.to_thread(write, root / "Front Door" / "a.jpg", jpeg(1))
                await wait_until(lambda: len(recorder.closed) == 1, what="the incident to close")
            finally:
                await pipeline.stop()
    finally:
        await detector.stop()
    (opened,) = recorder.events
    assert opened.source is EventSource.HEURISTIC
    assert opened.raw_score is not None
    assert opened.risk_score == max(0, opened.raw_score - 30) < opened.raw_score
    assert opened.calibration.startswith("lowered by ")
    assert "3 of the last 3 similar night-time person events in Front Door" in opened.calibration
    (closed,) = recorder.closed
    assert (closed.source, closed.risk_score, closed.raw_score) == (EventSource.LLM, 42, 72)
