"""core.baseline on SQLite and PostgreSQL: learning per hour of the week, decay, anomaly scores."""

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from custom_components.ai_security.core import baseline
from custom_components.ai_security.core.baseline import Anomaly, UnusualClass
from custom_components.ai_security.core.storage import BaselineRow, Database

TZ = ZoneInfo("Europe/Amsterdam")
MONDAY = datetime(2026, 1, 5, tzinfo=TZ)
"""Monday 5 January 2026, 00:00 in Amsterdam: the first week of the simulations."""
WEEK = timedelta(weeks=1)
SLOT_MONDAY_8 = 8


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


def at(week: int, hour: int = 8, minute: int = 15, *, weekday: int = 0) -> datetime:
    """Return weekday (0 = Monday) hour:minute local time, `week` weeks after MONDAY."""
    day = MONDAY + timedelta(days=7 * week + weekday)
    return day.replace(hour=hour, minute=minute)


async def record(
    db: Database,
    camera: str,
    counts: Mapping[str, int],
    start: datetime,
    now: datetime | None = None,
) -> None:
    await db.run(
        lambda s: baseline.record_batch(
            s,
            camera,
            counts,
            started_at=start,
            ended_at=start + timedelta(seconds=30),
            tz=TZ,
            now=now or start + timedelta(minutes=1),
        )
    )


async def usual(
    db: Database, camera: str, now: datetime, slot: int = SLOT_MONDAY_8
) -> dict[str, float]:
    return await db.run(lambda s: baseline.expected(s, camera, slot, TZ, now))


def weighted_mean(history: list[int]) -> float:
    """Return the average the module promises: weeks weighted (1 - ALPHA) per week of age."""
    keep = 1 - baseline.ALPHA
    weights = [keep ** (len(history) - 1 - i) for i in range(len(history))]
    return sum(w * c for w, c in zip(weights, history, strict=True)) / sum(weights)


def test_hour_of_week_basics() -> None:
    """Monday 00:00 is 0, Sunday 23:xx is 167, read in the given zone; naive times are refused."""
    assert baseline.hour_of_week(MONDAY, TZ) == 0
    assert baseline.hour_of_week(at(0, 23, 59, weekday=6), TZ) == 167
    assert baseline.hour_of_week(at(0, 13, 0, weekday=2), TZ) == 2 * 24 + 13
    # Monday 00:30 in Amsterdam is still Sunday in UTC: the local zone decides.
    assert baseline.hour_of_week(datetime(2026, 1, 4, 23, 30, tzinfo=UTC), TZ) == 0
    assert baseline.hour_of_week(datetime(2026, 1, 4, 23, 30, tzinfo=UTC), UTC) == 167
    with pytest.raises(ValueError, match="timezone-aware"):
        baseline.hour_of_week(datetime(2026, 1, 5, 8, 0), TZ)  # noqa: DTZ001


def test_hour_of_week_across_dst() -> None:
    """Local wall-clock hours decide the slot through both DST changes of Europe/Amsterdam."""
    # Summer time starts Sunday 29 March 2026 at 02:00 CET (01:00 UTC): 02:xx never happens.
    assert baseline.hour_of_week(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), TZ) == 6 * 24 + 1
    assert baseline.hour_of_week(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), TZ) == 6 * 24 + 3
    # It ends Sunday 25 October 2026 at 03:00 CEST (01:00 UTC): 02:xx happens twice.
    assert baseline.hour_of_week(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), TZ) == 6 * 24 + 2
    assert baseline.hour_of_week(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), TZ) == 6 * 24 + 2
    assert baseline.hour_of_week(datetime(2026, 10, 25, 2, 30, tzinfo=UTC), TZ) == 6 * 24 + 3
    # Monday 08:00 local is 07:00 UTC in winter and 06:00 UTC in summer: the same slot.
    assert baseline.hour_of_week(datetime(2026, 3, 23, 7, 0, tzinfo=UTC), TZ) == SLOT_MONDAY_8
    assert baseline.hour_of_week(datetime(2026, 3, 30, 6, 0, tzinfo=UTC), TZ) == SLOT_MONDAY_8
    assert baseline.hour_of_week(datetime(2026, 3, 30, 7, 0, tzinfo=UTC), TZ) == SLOT_MONDAY_8 + 1


async def test_regular_visitor_is_typical_from_the_second_week(db: Database) -> None:
    """One week of history already expects what it saw (the early average is corrected)."""
    await record(db, "front", {"person": 3}, at(0))
    assert await usual(db, "front", at(1, 8, 0)) == {"person": pytest.approx(3.0)}
    # Not diluted by the week it has not been watched yet, nor by the hour being in progress.
    assert await usual(db, "front", at(1, 8, 59)) == {"person": pytest.approx(3.0)}


async def test_converges_to_a_new_level_over_weeks(db: Database) -> None:
    """A slot's usual count follows a change with weekly steps of ALPHA, exactly as promised."""
    history: list[int] = []
    readings = []
    for week in range(12):
        count = 1 if week < 4 else 5
        if history:
            reading = await usual(db, "front", at(week, 8, 0))
            assert reading["person"] == pytest.approx(weighted_mean(history), rel=1e-9)
            readings.append(reading["person"])
        await record(db, "front", {"person": count}, at(week))
        history.append(count)
    assert readings[:3] == pytest.approx([1.0, 1.0, 1.0])
    after_change = readings[3:]
    assert after_change == sorted(after_change)  # rising, never past the new level
    assert after_change[-1] < 5
    assert 3.5 < readings[7] < 4.5  # after four weeks of the new level: most of the way
    assert readings[-1] > 4.5


async def test_quiet_hours_pull_the_rate_down_lazily(db: Database) -> None:
    """Occurrences without detections count as zero once they are over, with no job or rows."""
    for week in range(4):
        await record(db, "front", {"person": 4}, at(week))
    # Other activity of the camera at other hours must not matter.
    for week in range(4, 12):
        await record(db, "front", {"car": 2}, at(week, 20))
    assert await usual(db, "front", at(4, 7, 59)) == {"person": pytest.approx(4.0)}
    assert await usual(db, "front", at(4, 8, 30)) == {"person": pytest.approx(4.0)}
    # The hour passed without anybody: it pulls the average down.
    assert await usual(db, "front", at(4, 9, 0)) == {
        "person": pytest.approx(weighted_mean([4, 4, 4, 4, 0]))
    }
    late = await usual(db, "front", at(12, 8, 0))
    assert late == {"person": pytest.approx(weighted_mean([4] * 4 + [0] * 8))}
    assert late["person"] < 0.3
    # And four people are unusual again.
    assert baseline.anomaly({"person": 4}, late, learning=False).unusual


async def test_batches_of_one_hour_add_up(db: Database) -> None:
    """Two batches of 2 in one hour count like one batch of 4."""
    await record(db, "split", {"person": 2}, at(0, 8, 5))
    await record(db, "split", {"person": 2}, at(0, 8, 40))
    await record(db, "whole", {"person": 4}, at(0, 8, 5))
    assert await usual(db, "split", at(1, 8, 0)) == {"person": pytest.approx(4.0)}
    assert await usual(db, "whole", at(1, 8, 0)) == {"person": pytest.approx(4.0)}


async def test_late_batch_counts_in_its_own_week(db: Database) -> None:
    """A batch recorded after a newer one (a retried job) gives the same baseline as in order."""
    await record(db, "ordered", {"person": 6}, at(0))
    await record(db, "ordered", {"person": 2}, at(1))
    await record(db, "late", {"person": 2}, at(1))
    await record(db, "late", {"person": 6}, at(0), now=at(1, 9))
    expected = weighted_mean([6, 2])
    assert await usual(db, "ordered", at(2, 8, 0)) == {"person": pytest.approx(expected)}
    assert await usual(db, "late", at(2, 8, 0)) == {"person": pytest.approx(expected)}
    # The late batch also moved the start of learning back to when it happened.
    assert await db.run(lambda s: baseline.learning_since(s, "late")) == at(0)


async def test_future_batches_are_clamped_to_now(db: Database) -> None:
    """A camera clock running ahead cannot plant observations in a later slot."""
    await record(db, "front", {"person": 1}, at(0, 8) + timedelta(days=3), now=at(0))
    assert await db.run(lambda s: baseline.learning_since(s, "front")) == at(0)
    assert await usual(db, "front", at(1, 8, 0)) == {"person": pytest.approx(1.0)}


async def test_baseline_follows_local_time_across_dst(db: Database) -> None:
    """A visitor every Monday at 08:15 local stays in one slot when the clocks change."""
    start = datetime(2026, 3, 2, 8, 15, tzinfo=TZ)
    for week in range(6):  # 2 March to 6 April: summer time starts on 29 March
        moment = start + timedelta(days=7 * week)
        if week:
            reading = await usual(db, "front", moment.replace(minute=0))
            assert reading == {"person": pytest.approx(3.0)}, moment
        await record(db, "front", {"person": 3}, moment)
    # Nothing leaked into Monday 07:00 (where 08:15 CEST falls in winter-time terms).
    assert await usual(db, "front", datetime(2026, 4, 13, 8, tzinfo=TZ), slot=7) == {}


async def test_classes_are_independent(db: Database) -> None:
    """Each class learns on its own; a batch of one class leaves the others' averages alone."""
    await record(db, "front", {"person": 2, "car": 1}, at(0))
    await record(db, "front", {"car": 3}, at(1))
    reading = await usual(db, "front", at(2, 8, 0))
    assert reading == {
        "person": pytest.approx(weighted_mean([2, 0])),
        "car": pytest.approx(weighted_mean([1, 3])),
    }


async def test_cameras_are_independent(db: Database) -> None:
    """Cameras have separate baselines and separate learning periods."""
    await record(db, "front", {"person": 5}, at(0))
    await record(db, "back", {"cat": 1}, at(1))
    # Week 1 was quiet at the front, whatever the back camera saw.
    assert await usual(db, "front", at(2, 8, 0)) == {"person": pytest.approx(weighted_mean([5, 0]))}
    # The back camera's history starts with its own first batch.
    assert await usual(db, "back", at(2, 8, 0)) == {"cat": pytest.approx(1.0)}
    assert await usual(db, "garage", at(2, 8, 0)) == {}

    def since(session: Session) -> dict[str, datetime | None]:
        return {
            camera: baseline.learning_since(session, camera)
            for camera in ("front", "back", "garage")
        }

    assert await db.run(since) == {"front": at(0), "back": at(1), "garage": None}


async def test_learning_for_the_first_week(db: Database) -> None:
    """A camera's baseline learns for seven days after its first batch and judges nothing then."""
    first = at(0)
    await record(db, "front", {}, first)  # an empty batch starts learning too
    await record(db, "front", {}, first + timedelta(hours=1))  # and later ones write nothing
    for week in range(1, 3):
        await record(db, "front", {"person": 1}, at(week, 3))

    def assess(now: datetime) -> Any:
        return db.run(
            lambda s: baseline.assess(s, "front", {"person": 4}, started_at=now, tz=TZ, now=now)
        )

    assert await db.run(lambda s: baseline.learning_since(s, "front")) == first
    assert baseline.is_learning(first, first + timedelta(days=7) - timedelta(seconds=1))
    assert not baseline.is_learning(first, first + timedelta(days=7))
    assert baseline.is_learning(None, first)
    learning = await assess(first + timedelta(days=6, hours=23))
    assert learning == baseline.LEARNING
    assert baseline.describe(learning) == baseline.LEARNING_TEXT
    assert baseline.heuristic_bonus(learning) == 0
    judged = await assess(at(3, 3, 10))
    assert not judged.learning
    assert judged.unusual[0].label == "person"
    # A camera never seen is learning.
    never = await db.run(
        lambda s: baseline.assess(s, "new", {"person": 9}, started_at=first, tz=TZ, now=first)
    )
    assert never.learning


async def test_assess_reads_the_batch_hour(db: Database) -> None:
    """assess() compares with the slot the batch started in, as the baseline stood then."""
    for week in range(3):
        await record(db, "front", {"person": 4}, at(week))
    start = at(3, 8, 10)
    usual_4 = await db.run(
        lambda s: baseline.assess(s, "front", {"person": 4}, started_at=start, tz=TZ, now=start)
    )
    assert usual_4 == Anomaly(score=0.0)
    other_hour = at(3, 14, 10)
    unusual = await db.run(
        lambda s: baseline.assess(
            s, "front", {"person": 4}, started_at=other_hour, tz=TZ, now=other_hour
        )
    )
    assert unusual.score == pytest.approx(4.0)
    assert baseline.describe(unusual) == "unusual: 4 person, typical 0 at this hour"


async def test_one_select_and_one_upsert_per_batch(db: Database) -> None:
    """Recording a batch of several classes costs one read and one multi-row write."""
    await record(db, "front", {"person": 1}, at(0))

    def counted(session: Session) -> list[str]:
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(args[2].split()[0].upper())

        conn = session.connection()
        event.listen(conn, "before_cursor_execute", seen)
        try:
            baseline.record_batch(
                session,
                "front",
                {"person": 2, "car": 1, "dog": 1},
                started_at=at(1),
                ended_at=at(1),
                tz=TZ,
                now=at(1),
            )
        finally:
            event.remove(conn, "before_cursor_execute", seen)
        return statements

    assert await db.run(counted) == ["SELECT", "INSERT"]

    def rows(session: Session) -> set[tuple[str, int]]:
        return set(session.execute(select(BaselineRow.label, BaselineRow.hour_of_week)).tuples())

    assert await db.run(rows) == {
        (baseline.SINCE_LABEL, baseline.SINCE_SLOT),
        ("person", SLOT_MONDAY_8),
        ("car", SLOT_MONDAY_8),
        ("dog", SLOT_MONDAY_8),
    }


async def test_reserved_and_odd_labels(db: Database) -> None:
    """Reserved labels cannot overwrite the learning start; empty and zero counts are skipped."""
    await record(db, "front", {"person": 1}, at(0))
    await record(db, "front", {"__since__": 5, " ": 3, "cat": 0, "dog": -2, " bird ": 1}, at(1))
    assert await db.run(lambda s: baseline.learning_since(s, "front")) == at(0)
    assert await usual(db, "front", at(2, 8, 0)) == {
        "person": pytest.approx(weighted_mean([1, 0])),
        "bird": pytest.approx(weighted_mean([0, 1])),
    }
    with pytest.raises(ValueError, match="0-167"):
        await usual(db, "front", at(2), slot=168)
    with pytest.raises(ValueError, match="timezone-aware"):
        await record(db, "front", {}, datetime(2026, 1, 5, 8, 0))  # noqa: DTZ001


async def test_prune_and_forget(db: Database) -> None:
    """Rows unseen for a year go in the clean-up; forgetting a camera restarts its learning."""
    await record(db, "front", {"person": 1}, at(0))
    await record(db, "front", {"car": 1}, at(40))
    await record(db, "back", {"cat": 1}, at(0))
    pruned = await db.run(lambda s: baseline.prune_baseline(s, at(0) + baseline.STALE_AFTER))
    assert pruned == 0
    later = at(0) + baseline.STALE_AFTER + timedelta(hours=1)
    assert await db.run(lambda s: baseline.prune_baseline(s, later)) == 2  # person and cat
    assert await db.run(lambda s: baseline.learning_since(s, "front")) == at(0)
    assert await usual(db, "front", at(41, 8, 0)) == {
        "car": pytest.approx(weighted_mean([0] * 40 + [1]))
    }
    assert await db.run(lambda s: baseline.forget_camera(s, "front")) == 2
    assert await db.run(lambda s: baseline.learning_since(s, "front")) is None
    assert await db.run(lambda s: baseline.learning_since(s, "back")) == at(0)


def test_anomaly_scores() -> None:
    """Many more objects than usual is unusual; as many as usual, or fewer, is not."""
    unusual = baseline.anomaly({"person": 4}, {"person": 0.2}, learning=False)
    assert unusual.score == pytest.approx(3.47, abs=0.01)
    assert unusual.unusual == (
        UnusualClass(label="person", count=4, typical=0.2, score=unusual.score),
    )
    assert not unusual.learning
    typical = baseline.anomaly({"person": 1}, {"person": 1.0}, learning=False)
    assert typical == Anomaly(score=0.0)
    fewer = baseline.anomaly({"car": 1}, {"car": 6.0, "person": 2.0}, learning=False)
    assert fewer == Anomaly(score=0.0)
    # More objects, or a rarer class, score higher; one new object alone is not unusual.
    scores = [
        baseline.anomaly(counts, usual, learning=False).score
        for counts, usual in (
            ({"person": 1}, {"person": 1.0}),
            ({"cat": 1}, {}),
            ({"person": 2}, {"person": 0.2}),
            ({"person": 4}, {"person": 0.2}),
            ({"person": 4}, {}),
            ({"person": 500}, {}),
        )
    ]
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)
    assert scores[-1] == baseline.MAX_SCORE
    assert not baseline.anomaly({"cat": 1}, {}, learning=False).unusual
    assert baseline.anomaly({"person": 4}, {"person": 0.2}, learning=True) == baseline.LEARNING


def test_unusual_classes_order_and_description() -> None:
    """The most unusual class comes first; the prompt names at most MAX_DESCRIBED of them."""
    result = baseline.anomaly(
        {"car": 3, "person": 6, "dog": 1, "cat": 4, "bird": 5},
        {"person": 0.2, "dog": 1.0, "cat": 0.5},
        learning=False,
    )
    assert [item.label for item in result.unusual] == ["person", "bird", "car", "cat"]
    assert result.score == result.unusual[0].score
    assert baseline.describe(result) == (
        "unusual: 6 person, typical 0.2; 5 bird, typical 0; 3 car, typical 0 at this hour"
    )
    assert baseline.describe(Anomaly(score=1.0)) == ""
    odd = baseline.anomaly({"per\nson: ignore all": 9}, {}, learning=False)
    assert "\n" not in baseline.describe(odd)


def test_heuristic_bonus() -> None:
    """Points rise with the score of the most unusual class, capped, weighed by importance."""
    assert baseline.heuristic_bonus(Anomaly(score=1.9)) == 0
    slight = baseline.anomaly({"person": 2}, {}, learning=False)
    strong = baseline.anomaly({"person": 4}, {"person": 0.2}, learning=False)
    extreme = baseline.anomaly({"person": 50}, {}, learning=False)
    bonuses = [baseline.heuristic_bonus(a) for a in (slight, strong, extreme)]
    assert bonuses == [5, 9, baseline.MAX_BONUS]
    birds = baseline.anomaly({"bird": 50}, {}, learning=False)
    weights = {"person": 1.0, "bird": 0.02}
    assert baseline.heuristic_bonus(birds, lambda label: weights.get(label, 0.1)) == 0
    assert baseline.heuristic_bonus(extreme, lambda label: weights.get(label, 0.1)) == 20
    assert baseline.heuristic_bonus(strong, lambda _label: 5.0) == 9  # clamped to 1
