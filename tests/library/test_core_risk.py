"""core.risk: levels from scores by the thresholds, and the heuristic scorer's sense and bounds."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from custom_components.ai_security.core.models import (
    BoundingBox,
    Detection,
    EventSource,
    RiskLevel,
)
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.risk import (
    LEVEL_COLORS,
    LEVEL_ORDER,
    OBJECT_WEIGHTS,
    at_least,
    describe_objects,
    heuristic_verdict,
    is_night,
    level_for,
    level_rank,
    plural,
)
from custom_components.ai_security.core.settings import SeverityThresholds

DEFAULT = SeverityThresholds()
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOON_UTC = datetime(2024, 6, 6, 12, 0, tzinfo=UTC)
NIGHT_UTC = datetime(2024, 6, 6, 23, 30, tzinfo=UTC)


def detection(
    label: str,
    confidence: float = 0.9,
    *,
    at: datetime = NOON_UTC,
    path: str = "frame.jpg",
) -> Detection:
    """Return a detection of label in a 1920x1080 frame."""
    return Detection(
        label=label,
        confidence=confidence,
        bbox=BoundingBox(x=800, y=400, w=200, h=400),
        frame_width=1920,
        frame_height=1080,
        detected_at=at,
        path=path,
    )


def request(
    *detections: Detection,
    start: datetime = NOON_UTC,
    camera: str = "Front Door",
    zone: ZoneInfo | type[UTC] = UTC,
    fast: bool = False,
) -> AnalysisRequest:
    """Return a 60 s batch of camera starting at start."""
    return AnalysisRequest(
        camera_name=camera,
        started_at=start,
        ended_at=start + timedelta(seconds=60),
        local_tz=zone if isinstance(zone, ZoneInfo) else UTC,
        detections=detections,
        is_fast_path=fast,
    )


def score(*labels: str, start: datetime = NOON_UTC, confidence: float = 0.9) -> int:
    """Return the heuristic score of labels seen together in one frame at start."""
    detections = tuple(detection(label, confidence, at=start) for label in labels)
    return heuristic_verdict(request(*detections, start=start), DEFAULT).risk_score


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, RiskLevel.LOW),
        (29, RiskLevel.LOW),
        (30, RiskLevel.MEDIUM),
        (59, RiskLevel.MEDIUM),
        (60, RiskLevel.HIGH),
        (84, RiskLevel.HIGH),
        (85, RiskLevel.CRITICAL),
        (100, RiskLevel.CRITICAL),
    ],
)
def test_level_for_default_thresholds(value: int, expected: RiskLevel) -> None:
    """Each level starts at its threshold: 30 / 60 / 85; below medium is low."""
    assert level_for(value, DEFAULT) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (9, RiskLevel.LOW),
        (10, RiskLevel.MEDIUM),
        (19, RiskLevel.MEDIUM),
        (20, RiskLevel.HIGH),
        (99, RiskLevel.HIGH),
        (100, RiskLevel.CRITICAL),
    ],
)
def test_level_for_custom_thresholds(value: int, expected: RiskLevel) -> None:
    """The user's thresholds decide, up to a critical level that only 100 reaches."""
    thresholds = SeverityThresholds(medium=10, high=20, critical=100)
    assert level_for(value, thresholds) is expected


def test_person_at_night_beats_person_by_day_beats_cat() -> None:
    """The ordering every user expects, with the scores the module docstring states."""
    cat_day, person_day, person_night = (
        score("cat"),
        score("person"),
        score("person", start=NIGHT_UTC),
    )
    assert cat_day < person_day < person_night
    assert (cat_day, score("car"), person_day, person_night) == (2, 12, 40, 60)
    assert score("cat", start=NIGHT_UTC) < 10  # night does not make a cat alarming


def test_more_people_score_higher_with_diminishing_steps() -> None:
    """Each extra person adds less than the one before; no crowd passes the cap."""
    by_day = [score(*["person"] * count) for count in range(1, 8)]
    assert by_day == sorted(set(by_day))  # strictly rising
    steps = [later - earlier for earlier, later in pairwise(by_day)]
    assert steps == sorted(steps, reverse=True)
    assert score(*["person"] * 200) <= 60
    assert score(*["person"] * 200, start=NIGHT_UTC) <= 91
    assert score("person", "person") == 48
    assert score("person", "person", start=NIGHT_UTC) == 73


def test_one_person_in_many_frames_is_not_a_crowd() -> None:
    """The same person in ten snapshots counts as one person who stayed, not as ten people."""
    frames = tuple(
        detection("person", at=NOON_UTC + timedelta(seconds=i), path=f"{i}.jpg") for i in range(10)
    )
    stayed = heuristic_verdict(request(*frames), DEFAULT)
    assert score("person") < stayed.risk_score < score(*["person"] * 10)
    assert stayed.summary.startswith("A person at")
    assert "1 at once, seen in 10 frames" in stayed.reasoning


def test_frames_of_one_clip_are_told_apart() -> None:
    """One person in two frames of one clip stored at one moment is one; two in a frame, two."""
    clip = tuple(
        replace(detection("person", path="clip.mp4"), frame_time=t, media_id=7) for t in (0.5, 1.5)
    )
    verdict = heuristic_verdict(request(*clip), DEFAULT)
    assert verdict.summary.startswith("A person at")
    assert "1 at once, seen in 2 frames" in verdict.reasoning
    both = heuristic_verdict(
        request(clip[0], replace(clip[0], bbox=BoundingBox(x=0, y=0, w=9, h=9))), DEFAULT
    )
    assert both.summary.startswith("2 people at")


def test_confidence_and_other_classes_raise_the_score() -> None:
    """A sure detection weighs more than a doubtful one; a car next to a person adds a little."""
    assert score("person", confidence=0.5) < score("person", confidence=0.99)
    assert score("person") < score("person", "car") < score("person") + score("car")
    assert score("umbrella") == score("chair") < score("dog")  # unknown classes weigh little
    assert "umbrella" not in OBJECT_WEIGHTS


def test_no_detections_is_low() -> None:
    """An empty batch scores 0 and says so."""
    verdict = heuristic_verdict(request(start=NIGHT_UTC), DEFAULT)
    assert verdict.risk_score == 0
    assert verdict.risk_level is RiskLevel.LOW
    assert verdict.summary == "Nothing detected at Front Door at 23:30"
    assert "No objects were detected" in verdict.reasoning


def test_verdict_is_deterministic_and_explained() -> None:
    """Same input, same verdict; the summary names the objects, the camera and the local time."""
    # 22:14 UTC is 00:14 in Amsterdam (summer time): night there, and the next day.
    start = datetime(2024, 6, 6, 22, 14, tzinfo=UTC)
    batch = request(
        detection("person", 0.93, at=start, path="a.jpg"),
        detection("person", 0.81, at=start, path="a.jpg"),
        detection("car", 0.7, at=start + timedelta(seconds=5), path="b.jpg"),
        start=start,
        zone=AMSTERDAM,
        fast=True,
    )
    first, second = heuristic_verdict(batch, DEFAULT), heuristic_verdict(batch, DEFAULT)
    assert first == second
    assert first.source is EventSource.HEURISTIC
    assert first.model_level is None
    assert first.summary == "2 people and a car at Front Door at 00:14"
    assert "could not be asked" in first.reasoning
    assert "person: 2 at once, seen in 1 frame, up to 93% confident" in first.reasoning
    assert "It was night (00:14 local time)" in first.reasoning
    assert "fast path" in first.reasoning
    assert f"Risk score {first.risk_score} of 100: {first.risk_level}." in first.reasoning
    assert first.risk_level is level_for(first.risk_score, DEFAULT)
    # The same moment read in UTC is 22:14, also night: the same score, another clock time.
    in_utc = heuristic_verdict(request(*batch.detections, start=start), DEFAULT)
    assert in_utc.summary == "2 people and a car at Front Door at 22:14"
    assert in_utc.risk_score == first.risk_score


def test_thresholds_decide_the_heuristic_level() -> None:
    """The heuristic's level comes from the configured thresholds like the LLM's."""
    batch = request(detection("person"))
    assert heuristic_verdict(batch, DEFAULT).risk_level is RiskLevel.MEDIUM
    strict = SeverityThresholds(medium=5, high=10, critical=40)
    assert heuristic_verdict(batch, strict).risk_level is RiskLevel.CRITICAL


def test_extreme_inputs_stay_in_range() -> None:
    """500 detections of many classes, certain or junk, by night: always 0-100 and readable."""
    labels = [*OBJECT_WEIGHTS, "thing\nwith newline", ""]
    many = tuple(
        detection(
            labels[i % len(labels)],
            confidence=(i % 7) / 3 - 0.5,  # below 0 and above 1 too
            at=NIGHT_UTC + timedelta(seconds=i % 90),
            path=f"{i % 13}.jpg",
        )
        for i in range(500)
    )
    verdict = heuristic_verdict(request(*many, start=NIGHT_UTC), DEFAULT)
    assert 0 <= verdict.risk_score <= 100
    assert verdict.risk_level is level_for(verdict.risk_score, DEFAULT)
    assert "\n" not in verdict.summary
    assert "other objects at Front Door" in verdict.summary
    assert "more kinds of object were seen" in verdict.reasoning
    assert len(verdict.summary) < 200
    assert len(verdict.reasoning) < 1000
    knives = tuple(detection("knife", 1.0, at=NIGHT_UTC, path=f"{i}.jpg") for i in range(500))
    people = tuple(detection("person", 1.0, at=NIGHT_UTC) for _ in range(500))
    worst = heuristic_verdict(request(*knives, *people, start=NIGHT_UTC), DEFAULT)
    assert worst.risk_score == 100
    assert worst.risk_level is RiskLevel.CRITICAL


def test_night_hours_are_local() -> None:
    """22:00 to 06:00 in the request's zone; the heuristic reads the batch start there."""
    assert is_night(datetime(2024, 1, 1, 22, 0, tzinfo=UTC))
    assert is_night(datetime(2024, 1, 1, 5, 59, tzinfo=UTC))
    assert not is_night(datetime(2024, 1, 1, 6, 0, tzinfo=UTC))
    assert not is_night(datetime(2024, 1, 1, 21, 59, tzinfo=UTC))
    # 20:30 UTC is 22:30 in Amsterdam in summer.
    start = datetime(2024, 6, 6, 20, 30, tzinfo=UTC)
    in_utc = heuristic_verdict(request(detection("person", at=start), start=start), DEFAULT)
    local = heuristic_verdict(
        request(detection("person", at=start), start=start, zone=AMSTERDAM), DEFAULT
    )
    assert in_utc.risk_score < local.risk_score


def test_plural_and_object_descriptions() -> None:
    """Summaries read like English."""
    assert plural("person", 1) == "a person"
    assert plural("umbrella", 1) == "an umbrella"
    assert plural("person", 3) == "3 people"
    assert plural("bus", 2) == "2 buses"
    assert plural("car", 2) == "2 cars"
    assert describe_objects([]) == "nothing detected"


def test_level_order_comparisons_and_colours() -> None:
    """Levels compare from low to critical; each has its own colour for the UI."""
    assert [level_rank(level) for level in LEVEL_ORDER] == [0, 1, 2, 3]
    assert at_least(RiskLevel.CRITICAL, RiskLevel.HIGH)
    assert at_least(RiskLevel.HIGH, RiskLevel.HIGH)
    assert not at_least(RiskLevel.MEDIUM, RiskLevel.HIGH)
    assert set(LEVEL_COLORS) == set(RiskLevel)
    assert len(set(LEVEL_COLORS.values())) == 4
    assert all(colour.startswith("#") and len(colour) == 7 for colour in LEVEL_COLORS.values())


def test_changed_thresholds_apply_to_the_next_verdict() -> None:
    """The same score reads as another level once the thresholds change."""
    assert level_for(50, SeverityThresholds()) is RiskLevel.MEDIUM
    assert level_for(50, SeverityThresholds(medium=20, high=40, critical=90)) is RiskLevel.HIGH
