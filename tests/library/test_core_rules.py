"""core.rules: which events an alert rule matches, its schedule, the cooldown, a replay."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from custom_components.ai_security.core.events import EventQueryError
from custom_components.ai_security.core.models import EventSource, RiskLevel, SecurityEvent
from custom_components.ai_security.core.rules import (
    MAX_COOLDOWN_MINUTES,
    AlertRule,
    RuleError,
    RuleReplay,
    apply_cooldown,
    evaluate,
    fits,
    in_schedule,
    matches,
)
from custom_components.ai_security.core.storage import Database, EventRow
from tests.translations import INTEGRATION, STRINGS

PARIS = ZoneInfo("Europe/Paris")
# Thursday 26 November 2026, 23:00 in Paris (22:00 UTC).
NIGHT = datetime(2026, 11, 26, 23, 0, tzinfo=PARIS)
_COUNTER = iter(range(1_000_000))


def event(
    at: datetime = NIGHT,
    *,
    camera_id: str = "front_door",
    level: RiskLevel = RiskLevel.HIGH,
    objects: tuple[str, ...] = ("person",),
    zones: tuple[str, ...] = (),
    event_id: str | None = None,
) -> SecurityEvent:
    return SecurityEvent(
        event_id=event_id or f"e{next(_COUNTER):06d}",
        camera_id=camera_id,
        started_at=at.astimezone(UTC),
        ended_at=at.astimezone(UTC) + timedelta(seconds=30),
        risk_score=70,
        risk_level=level,
        summary="A person at the door",
        reasoning="Late at night.",
        object_types=objects,
        detection_count=1,
        is_fast_path=False,
        source=EventSource.LLM,
        zones=zones,
    )


def at(hour: int, minute: int = 0, *, day: int = 26, tz: tzinfo = PARIS) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=tz)


# --- the rule itself ------------------------------------------------------------------------------


def test_a_rule_without_conditions_matches_every_event() -> None:
    """Every condition left empty: any camera, level, object, zone, hour and day."""
    rule = AlertRule()
    assert rule.min_level is RiskLevel.LOW
    assert rule.cooldown_minutes == 10
    for level in RiskLevel:
        assert matches(rule, event(level=level, objects=()), PARIS)
    assert matches(rule, event(at(12), camera_id="garden", zones=("lawn",)), PARIS)


@pytest.mark.parametrize(
    "minutes", [-1, -0.5, MAX_COOLDOWN_MINUTES + 1, float("nan"), float("inf")]
)
def test_a_cooldown_out_of_range_is_refused_with_a_translated_error(minutes: float) -> None:
    with pytest.raises(RuleError) as err:
        AlertRule(cooldown_minutes=minutes)
    assert err.value.translation_key == "invalid_cooldown"
    assert err.value.translation_key in STRINGS["exceptions"]
    message = STRINGS["exceptions"][err.value.translation_key]["message"]
    assert message.format(**err.value.placeholders)


@pytest.mark.parametrize("minutes", [0, 0.5, 10, MAX_COOLDOWN_MINUTES])
def test_cooldowns_in_range_are_accepted(minutes: float) -> None:
    assert AlertRule(cooldown_minutes=minutes).cooldown_minutes == minutes


def test_every_refusal_of_a_rule_is_translated() -> None:
    """RuleError keys reach the user as they are (a ServiceValidationError): all have texts."""
    source = (INTEGRATION / "core" / "rules.py").read_text()
    keys = set(re.findall(r'RuleError\(\s*"(\w+)"', source))
    assert keys == {"invalid_cooldown", "invalid_weekday"}
    for key in keys:
        assert STRINGS["exceptions"][key]["message"]


def test_an_unknown_weekday_is_refused_with_a_translated_error() -> None:
    with pytest.raises(RuleError) as err:
        AlertRule(weekdays=("mon", "monday"))
    assert err.value.translation_key == "invalid_weekday"
    assert err.value.placeholders["weekday"] == "monday"
    message = STRINGS["exceptions"][err.value.translation_key]["message"]
    assert "monday" in message.format(**err.value.placeholders)


# --- what the event is ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minimum", "passing"),
    [
        (RiskLevel.LOW, {"low", "medium", "high", "critical"}),
        (RiskLevel.MEDIUM, {"medium", "high", "critical"}),
        (RiskLevel.HIGH, {"high", "critical"}),
        (RiskLevel.CRITICAL, {"critical"}),
    ],
)
def test_levels_are_ordered_low_medium_high_critical(minimum: RiskLevel, passing: set[str]) -> None:
    rule = AlertRule(min_level=minimum)
    assert {level.value for level in RiskLevel if fits(rule, event(level=level))} == passing


def test_object_types_match_any_of_them_in_any_case() -> None:
    rule = AlertRule(object_types=("Person", "dog"))
    assert fits(rule, event(objects=("car", "person")))
    assert fits(rule, event(objects=("DOG",)))
    assert not fits(rule, event(objects=("car", "cat")))
    assert not fits(rule, event(objects=()))


def test_zones_match_any_of_them_and_an_event_without_zones_matches_none() -> None:
    rule = AlertRule(zones=("Porch", "driveway"))
    assert fits(rule, event(zones=("porch",)))
    assert fits(rule, event(zones=("garden", "driveway")))
    assert not fits(rule, event(zones=("garden",)))
    assert not fits(rule, event(zones=()))
    # No zone asked for: events with or without zones pass.
    assert fits(AlertRule(), event(zones=()))
    assert fits(AlertRule(), event(zones=("garden",)))


def test_cameras_filter_by_camera_id() -> None:
    rule = AlertRule(camera_ids=("front_door", "garage"))
    assert fits(rule, event(camera_id="garage"))
    assert not fits(rule, event(camera_id="garden"))


def test_every_condition_must_hold() -> None:
    """AND across conditions: one failing is enough to stay silent."""
    rule = AlertRule(
        min_level=RiskLevel.HIGH,
        object_types=("person",),
        zones=("porch",),
        active_from=time(22),
        active_to=time(6),
    )
    assert matches(rule, event(NIGHT, objects=("person",), zones=("porch",)), PARIS)
    assert not matches(rule, event(at(12), objects=("person",), zones=("porch",)), PARIS)
    assert not matches(rule, event(NIGHT, level=RiskLevel.MEDIUM, objects=("person",)), PARIS)
    assert not matches(rule, event(NIGHT, objects=("car",), zones=("porch",)), PARIS)
    assert not matches(rule, event(NIGHT, objects=("person",), zones=("garden",)), PARIS)


# --- when: hours and weekdays ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at(21, 59), False),
        (at(22), True),
        (at(23), True),
        (at(0), True),
        (at(5, 59), True),
        (at(6), False),
        (at(12), False),
    ],
)
def test_hours_across_midnight(moment: datetime, inside: bool) -> None:
    """22:00 to 06:00: from 22:00 inclusive to 06:00 exclusive, as Home Assistant's condition."""
    rule = AlertRule(active_from=time(22), active_to=time(6))
    assert in_schedule(rule, moment, PARIS) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [(at(7, 59), False), (at(8), True), (at(12), True), (at(16, 59), True), (at(17), False)],
)
def test_hours_within_a_day(moment: datetime, inside: bool) -> None:
    rule = AlertRule(active_from=time(8), active_to=time(17))
    assert in_schedule(rule, moment, PARIS) is inside


@pytest.mark.parametrize("same", [time(0), time(22), time(6, 30)])
def test_from_equal_to_means_all_day(same: time) -> None:
    """The same time twice is all day (never an empty window), as the time condition has it."""
    rule = AlertRule(active_from=same, active_to=same)
    for hour in range(24):
        for minute in (0, 30, 59):
            assert in_schedule(rule, at(hour, minute), PARIS)


def test_one_bound_alone_runs_to_or_from_midnight() -> None:
    from_only = AlertRule(active_from=time(20))
    assert not in_schedule(from_only, at(19, 59), PARIS)
    assert in_schedule(from_only, at(23, 59), PARIS)
    assert not in_schedule(from_only, at(0, 30), PARIS)
    to_only = AlertRule(active_to=time(6))
    assert in_schedule(to_only, at(0), PARIS)
    assert not in_schedule(to_only, at(6), PARIS)


def test_hours_and_weekdays_are_local_time() -> None:
    """22:00 UTC on Thursday is 23:00 in Paris but 14:00 in Los Angeles."""
    rule = AlertRule(active_from=time(22, 30), active_to=time(23, 30), weekdays=("thu",))
    moment = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
    assert in_schedule(rule, moment, PARIS)
    assert not in_schedule(rule, moment, ZoneInfo("America/Los_Angeles"))
    # 23:30 UTC on Thursday is already Friday in Paris.
    late = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
    assert not in_schedule(AlertRule(weekdays=("thu",)), late, PARIS)
    assert in_schedule(AlertRule(weekdays=("fri",)), late, PARIS)


def test_weekdays_are_those_of_the_event_and_empty_means_every_day() -> None:
    weekend = AlertRule(weekdays=("sat", "sun"))
    assert not in_schedule(weekend, at(12, day=27), PARIS)  # Friday
    assert in_schedule(weekend, at(12, day=28), PARIS)  # Saturday
    assert in_schedule(weekend, at(12, day=29), PARIS)  # Sunday
    assert all(in_schedule(AlertRule(), at(12, day=day), PARIS) for day in range(23, 30))


# --- the cooldown ---------------------------------------------------------------------------------


def test_cooldown_suppresses_a_cameras_next_events_within_it() -> None:
    first = event(NIGHT)
    within = event(NIGHT + timedelta(minutes=5))
    fired, suppressed = apply_cooldown([within, first], 10)
    assert fired == [first]
    assert suppressed == 1


def test_cooldown_is_per_camera() -> None:
    front = event(NIGHT, camera_id="front_door")
    garden = event(NIGHT + timedelta(minutes=1), camera_id="garden")
    fired, suppressed = apply_cooldown([front, garden], 10)
    assert fired == [front, garden]
    assert suppressed == 0


def test_cooldown_counts_from_the_previous_matching_event_sent_or_not() -> None:
    """Events every 5 minutes with a 10-minute cooldown: one alert, then again after a pause."""
    burst = [event(NIGHT + timedelta(minutes=5 * n)) for n in range(5)]
    after_pause = event(NIGHT + timedelta(minutes=20 + 10))
    fired, suppressed = apply_cooldown([*burst, after_pause], 10)
    assert fired == [burst[0], after_pause]
    assert suppressed == 4


def test_an_event_exactly_one_cooldown_later_is_sent() -> None:
    first = event(NIGHT)
    later = event(NIGHT + timedelta(minutes=10))
    assert apply_cooldown([first, later], 10) == ([first, later], 0)


def test_cooldown_zero_suppresses_nothing() -> None:
    same_time = [event(NIGHT), event(NIGHT), event(NIGHT + timedelta(seconds=1))]
    fired, suppressed = apply_cooldown(same_time, 0)
    assert len(fired) == 3
    assert suppressed == 0


def test_cooldown_over_no_events() -> None:
    assert apply_cooldown([], 10) == ([], 0)


def test_events_that_do_not_match_never_hold_back_an_alert() -> None:
    """A low-risk event just before a high one does not start a cooldown for it."""
    rule = AlertRule(min_level=RiskLevel.HIGH)
    low = event(NIGHT, level=RiskLevel.LOW)
    high = event(NIGHT + timedelta(minutes=2))
    result = evaluate(rule, [low, high], PARIS)
    assert result.fired == [high]
    assert (result.matched, result.suppressed_by_cooldown, result.evaluated) == (1, 0, 2)


# --- evaluating over many events ------------------------------------------------------------------


def test_evaluate_counts_each_event_once_and_sends_oldest_first() -> None:
    rule = AlertRule(min_level=RiskLevel.HIGH, cooldown_minutes=10)
    first = event(NIGHT)
    again = event(NIGHT + timedelta(minutes=3))
    other_camera = event(NIGHT + timedelta(minutes=4), camera_id="garden")
    low = event(NIGHT + timedelta(minutes=6), level=RiskLevel.LOW)
    later = event(NIGHT + timedelta(minutes=30))
    result = evaluate(rule, [later, low, other_camera, again, first, first, later], PARIS)
    assert result.fired == [first, other_camera, later]
    assert result.suppressed_by_cooldown == 1
    assert result.matched == 4
    assert result.evaluated == 5


def test_evaluate_over_no_events_is_all_zero() -> None:
    result = evaluate(AlertRule(), [], PARIS)
    assert (result.fired, result.suppressed_by_cooldown, result.matched, result.evaluated) == (
        [],
        0,
        0,
        0,
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'rules.db'}")
    await database.start()
    yield database
    await database.close()


def stored(item: SecurityEvent) -> EventRow:
    return EventRow(
        event_id=item.event_id,
        camera_id=item.camera_id,
        started_at=item.started_at,
        ended_at=item.ended_at,
        risk_score=item.risk_score,
        risk_level=item.risk_level.value,
        summary=item.summary,
        reasoning=item.reasoning,
        object_types=list(item.object_types),
        detection_count=item.detection_count,
        is_fast_path=item.is_fast_path,
        source=item.source.value,
        zones=list(item.zones) or None,
        created_at=item.started_at,
    )


async def replay(
    db: Database, rule: AlertRule, start: datetime, end: datetime
) -> tuple[RuleReplay, int]:
    """Return the replay of rule over [start, end), every page read, and how many pages."""
    found = RuleReplay(rule, PARIS, start, end)
    pages = 1
    while await db.run(found.read_page):
        pages += 1
    return found, pages


async def test_replay_reads_every_page_of_the_range(db: Database) -> None:
    """1,100 events over three pages of 500: all are judged, only the range's."""
    base = NIGHT - timedelta(days=1)
    events = [
        event(base + timedelta(minutes=n), level=RiskLevel.HIGH if n % 2 else RiskLevel.LOW)
        for n in range(1100)
    ]
    outside = event(base - timedelta(minutes=1))
    zoned = event(base + timedelta(minutes=3, seconds=30), zones=("porch",))

    def add(session: Session) -> None:
        session.add_all(stored(item) for item in [*events, outside, zoned])

    await db.run(add)
    rule = AlertRule(min_level=RiskLevel.HIGH, cooldown_minutes=0)
    found, pages = await replay(db, rule, base, base + timedelta(days=1))
    assert pages == 3
    result = found.result()
    assert result.evaluated == 1101
    assert result.matched == 551
    assert result.suppressed_by_cooldown == 0
    assert [item.started_at for item in result.fired] == sorted(
        item.started_at for item in result.fired
    )

    # Zones come back from the database, and the cooldown applies over the whole range.
    porch, _ = await replay(db, AlertRule(zones=("porch",)), base, base + timedelta(days=1))
    assert [item.event_id for item in porch.result().fired] == [zoned.event_id]
    # A high-risk event every 2 minutes for 18 hours, 10 minutes of cooldown: one alert.
    cooled, _ = await replay(db, AlertRule(min_level=RiskLevel.HIGH), base, NIGHT)
    assert [item.event_id for item in cooled.result().fired] == [events[1].event_id]
    assert cooled.result().suppressed_by_cooldown == 550


async def test_replay_of_an_empty_range_is_all_zero(db: Database) -> None:
    found, pages = await replay(db, AlertRule(), NIGHT, NIGHT + timedelta(hours=1))
    assert pages == 1
    result = found.result()
    assert (result.fired, result.suppressed_by_cooldown, result.matched, result.evaluated) == (
        [],
        0,
        0,
        0,
    )


def test_replay_refuses_a_reversed_range() -> None:
    with pytest.raises(EventQueryError) as err:
        RuleReplay(AlertRule(), PARIS, NIGHT, NIGHT - timedelta(hours=1))
    assert err.value.translation_key == "invalid_date_range"
