"""Assist's queries on SQLite and a real PostgreSQL server, and the named periods.

A period summarised (counts per camera and level, the riskiest named, bounded), incidents with
an object counted (the JSON list matched exactly: "cat" is not "catering"), the latest incident,
and periods computed in the household's zone across a daylight-saving change.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from custom_components.ai_security.core.assist import (
    MAX_NOTABLE,
    SUMMARY_CHARS,
    brief,
    count_with_object,
    latest_incident,
    summarize,
)
from custom_components.ai_security.core.models import RiskLevel
from custom_components.ai_security.core.periods import PERIODS, period_bounds
from custom_components.ai_security.core.storage import Database, EventRow

TZ = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def add(
    db: Database,
    camera: str,
    at: datetime,
    score: int,
    objects: tuple[str, ...] = ("person",),
    summary: str = "Someone",
) -> str:
    event_id = uuid.uuid4().hex

    def store(session: Session) -> None:
        session.add(
            EventRow(
                event_id=event_id,
                camera_id=camera,
                started_at=at,
                ended_at=at + timedelta(minutes=1),
                risk_score=score,
                risk_level=(
                    "critical"
                    if score >= 85
                    else "high"
                    if score >= 60
                    else "medium"
                    if score >= 30
                    else "low"
                ),
                summary=summary,
                reasoning="r",
                object_types=list(objects),
                detection_count=1,
                is_fast_path=False,
                source="llm",
                created_at=at,
            )
        )

    await db.run(store)
    return event_id


async def test_a_period_is_summarised_and_bounded(db: Database) -> None:
    """Counts per camera and level; the riskiest named first; at most MAX_NOTABLE."""
    for n in range(14):
        await add(db, "garden", T0 + timedelta(minutes=n), 20 + n * 5)
    door = await add(db, "front_door", T0, 95, summary="x" * 500)
    await add(db, "front_door", T0 - timedelta(days=2), 99)  # before the period
    found = await db.run(
        lambda s: summarize(s, camera_ids=[], start=T0, end=T0 + timedelta(hours=1), notable=50)
    )
    assert found.total == 15
    assert found.levels["front_door"] == {"critical": 1}
    assert sum(found.levels["garden"].values()) == 14
    assert len(found.notable) == MAX_NOTABLE
    assert found.notable[0].event_id == door
    scores = [event.risk_score for event in found.notable]
    assert scores == sorted(scores, reverse=True)
    assert found.level_count(at_least=RiskLevel.HIGH) == 1 + sum(
        1 for n in range(14) if 20 + n * 5 >= 60
    )
    said = brief(found.notable[0], "Front Door", TZ)
    assert len(said["summary"]) == SUMMARY_CHARS
    assert said["started"] == "2026-11-10T13:00+01:00"
    only_garden = await db.run(
        lambda s: summarize(
            s,
            camera_ids=["garden"],
            start=T0,
            end=T0 + timedelta(hours=1),
            notable=0,
            min_level=RiskLevel.HIGH,
        )
    )
    assert set(only_garden.levels) == {"garden"}
    assert only_garden.notable == []


async def test_objects_are_counted_by_exact_class(db: Database) -> None:
    """An incident with a cat counts for cats; "cat" does not match a longer class name."""
    await add(db, "garden", T0, 30, ("cat",))
    await add(db, "garden", T0, 30, ("person", "cat"))
    await add(db, "garden", T0, 30, ("catering_van",))
    await add(db, "yard", T0, 30, ("cat",))
    end = T0 + timedelta(hours=1)
    cats = await db.run(
        lambda s: count_with_object(s, camera_ids=[], start=T0, end=end, label="cat")
    )
    assert cats == {"garden": 2, "yard": 1}
    hostile = await db.run(
        lambda s: count_with_object(s, camera_ids=["garden"], start=T0, end=end, label='%"')
    )
    assert hostile == {}


async def test_the_latest_incident(db: Database) -> None:
    """The latest of the cameras asked, or of any; none before anything happened."""
    await add(db, "garden", T0, 30)
    newest = await add(db, "front_door", T0 + timedelta(hours=1), 30)
    assert (await db.run(lambda s: latest_incident(s, camera_ids=[]))).event_id == newest
    garden = await db.run(lambda s: latest_incident(s, camera_ids=["garden"]))
    assert garden is not None
    assert garden.camera_id == "garden"
    assert await db.run(lambda s: latest_incident(s, camera_ids=["garden"], before=T0)) is None


def test_named_periods() -> None:
    """Each period ends no later than now and never starts after it ends."""
    now = datetime(2026, 11, 11, 13, 30, tzinfo=UTC)  # a Wednesday, 14:30 in Amsterdam
    for name in PERIODS:
        start, end = period_bounds(name, now, TZ)
        assert start <= end <= now, name
    assert period_bounds("today", now, TZ)[0] == datetime(2026, 11, 11, 0, 0, tzinfo=TZ)
    assert period_bounds("this_week", now, TZ)[0] == datetime(2026, 11, 9, 0, 0, tzinfo=TZ)
    assert period_bounds("last_week", now, TZ) == (
        datetime(2026, 11, 2, tzinfo=TZ),
        datetime(2026, 11, 9, tzinfo=TZ),
    )
    # At 14:30 last night is over; at 03:00 it is the night so far.
    assert period_bounds("last_night", now, TZ) == (
        datetime(2026, 11, 10, 18, 0, tzinfo=TZ),
        datetime(2026, 11, 11, 8, 0, tzinfo=TZ),
    )
    early = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
    assert period_bounds("last_night", early, TZ) == (
        datetime(2026, 11, 10, 18, 0, tzinfo=TZ),
        early,
    )
    # The evening has not begun: an empty period, not a reversed one.
    start, end = period_bounds("this_evening", now, TZ)
    assert start == end == now
    # Across the change to summer time the day still starts at local midnight.
    spring = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert period_bounds("today", spring, TZ)[0].utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="unknown period"):
        period_bounds("forever", now, TZ)
