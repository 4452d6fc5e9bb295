"""Risk levels from scores, and the rule-based scorer that judges batches while the LLM is down.

The level of every event is derived from its score by the user's thresholds (level_for), whoever
gave the score. heuristic_verdict() is the fallback when the LLM cannot be reached: a small,
deterministic model of what makes camera activity worrying, so that an outage of the LLM still
yields events whose scores mean something (never one constant score).

How the heuristic scores (all numbers are the module's constants below):

1. Each object class seen gets points: its weight from OBJECT_WEIGHTS (UNKNOWN_WEIGHT for classes
   not in the table), times a confidence factor (0.6 at 0 % rising to 1.0 at 100 %, from the most
   confident detection of the class), times a crowd factor for how many were seen at once (one
   frame), and a presence factor for in how many frames they were seen. Both factors grow with
   diminishing steps towards a cap, so 500 people score little more than 10.
2. The class with the most points counts fully; every other class adds OTHER_CLASS_SHARE of its
   points (a person with a car is a bit more than a person).
3. At night (local hours NIGHT_START_HOUR to NIGHT_END_HOUR at the batch start) the sum is
   multiplied by NIGHT_FACTOR.
4. The result is rounded and clamped to 0-100; no detections score 0.

With the defaults and 90 % confidence: a cat by day scores 2, a car by day 12, a person by day
40 and at night 60, two people at once by day 48 and at night 73; no crowd gets past 60 by day
or 91 at night.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
import logging
from types import MappingProxyType
from typing import Final

from .models import Detection, EventSource, RiskLevel, VerdictDetails
from .prompts import (
    MAX_CAMERA_NAME,
    AnalysisRequest,
    FrameKey,
    clean_text,
    frame_key,
    most_at_once,
)
from .settings import SeverityThresholds

_LOGGER = logging.getLogger(__name__)

OBJECT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        # People: the reason to have cameras.
        "person": 42.0,
        # Things people carry that may be a weapon or loot.
        "knife": 30.0,
        "baseball bat": 20.0,
        "scissors": 10.0,
        "backpack": 8.0,
        "suitcase": 8.0,
        "handbag": 6.0,
        # Vehicles: someone arriving; two-wheelers come closer to the house.
        "motorcycle": 14.0,
        "truck": 13.0,
        "car": 12.0,
        "bicycle": 10.0,
        "bus": 5.0,
        "boat": 5.0,
        "train": 2.0,
        "airplane": 2.0,
        # Animals: mostly harmless, except the big ones.
        "bear": 40.0,
        "elephant": 20.0,
        "horse": 6.0,
        "cow": 5.0,
        "sheep": 4.0,
        "dog": 5.0,
        "cat": 2.0,
        "bird": 1.0,
    }
)
"""Points per object class (COCO names, as RT-DETRv2 reports them), before the factors."""
UNKNOWN_WEIGHT: Final = 3.0
"""Points for a class not in OBJECT_WEIGHTS (furniture, plants, anything new): small."""

CONFIDENCE_FLOOR: Final = 0.6
"""The confidence factor at 0 % confidence; it rises linearly to 1.0 at 100 %."""
CROWD_BONUS: Final = 0.5
"""How much more many objects of a class at once can weigh than one (cap: 1 + CROWD_BONUS)."""
CROWD_STEP: Final = 0.6
"""Each further object at once adds this share of the previous one's increment."""
PRESENCE_BONUS: Final = 0.15
"""How much more a class seen in many frames can weigh than one seen once."""
PRESENCE_STEP: Final = 0.7
"""Each further frame adds this share of the previous frame's increment."""
OTHER_CLASS_SHARE: Final = 0.3
"""The share of its points that each class but the weightiest adds."""
NIGHT_START_HOUR: Final = 22
NIGHT_END_HOUR: Final = 6
NIGHT_FACTOR: Final = 1.5
"""The multiplier at night (local NIGHT_START_HOUR:00 to NIGHT_END_HOUR:00)."""

SUMMARY_CLASSES: Final = 3
"""Classes named in a heuristic summary; more are counted as 'other objects'."""
REASONING_CLASSES: Final = 5
"""Classes described in a heuristic reasoning."""

_PLURALS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "person": "people",
        "bus": "buses",
        "knife": "knives",
        "sheep": "sheep",
        "mouse": "mice",
        "scissors": "scissors",
        "skis": "skis",
        "wine glass": "wine glasses",
        "couch": "couches",
        "sandwich": "sandwiches",
        "toothbrush": "toothbrushes",
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The judgement of one batch: its score, the level derived from it, and why."""

    risk_score: int
    """0-100."""
    risk_level: RiskLevel
    """Derived from risk_score by the configured thresholds."""
    summary: str
    reasoning: str
    source: EventSource
    model_level: str | None = None
    """The level the LLM named when it disagreed with the derived one, else None."""
    details: VerdictDetails | None = None
    """The LLM's further words, the verifier's marks and what was sent (None: heuristic)."""
    raw_score: int | None = None
    """The score before calibration moved it (None: calibration did not move it)."""
    calibration: str = ""
    """Why calibration moved the score, in plain words ("" when it did not)."""


LEVEL_ORDER: Final[tuple[RiskLevel, ...]] = (
    RiskLevel.LOW,
    RiskLevel.MEDIUM,
    RiskLevel.HIGH,
    RiskLevel.CRITICAL,
)
"""The levels from least to most worrying."""

LEVEL_COLORS: Final[Mapping[RiskLevel, str]] = MappingProxyType(
    {
        RiskLevel.LOW: "#43A047",
        RiskLevel.MEDIUM: "#FFB800",
        RiskLevel.HIGH: "#F97316",
        RiskLevel.CRITICAL: "#E74856",
    }
)
"""One colour per level for cards and badges: green, amber, orange, red (as traffic lights)."""


def level_rank(level: RiskLevel) -> int:
    """Return the level's place from 0 (low) to 3 (critical), for comparing levels."""
    return LEVEL_ORDER.index(level)


def at_least(level: RiskLevel, minimum: RiskLevel) -> bool:
    """Return whether level is minimum or more worrying (rules and filters ask this)."""
    return level_rank(level) >= level_rank(minimum)


def level_for(score: int, thresholds: SeverityThresholds) -> RiskLevel:
    """Return the level a score falls in: below medium is low, from critical up is critical.

    thresholds are assumed valid (0 < medium < high < critical <= 100, as the options enforce).
    """
    if score >= thresholds.critical:
        return RiskLevel.CRITICAL
    if score >= thresholds.high:
        return RiskLevel.HIGH
    if score >= thresholds.medium:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def is_night(moment: datetime) -> bool:
    """Return whether a local time lies in the night hours (22:00 to 06:00)."""
    return moment.hour >= NIGHT_START_HOUR or moment.hour < NIGHT_END_HOUR


def _growth(count: int, bonus: float, step: float) -> float:
    """Return 1 for one, rising by shrinking steps towards 1 + bonus as count grows."""
    return 1.0 + bonus * (1.0 - step ** max(0, count - 1))


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassFacts:
    """What the batch shows about one object class, and the points it earns."""

    label: str
    at_once: int
    """The most objects of the class in one frame: how many there were, not how often seen."""
    frames: int
    """In how many frames the class was seen."""
    confidence: float
    """The most confident detection of the class (0-1)."""

    @property
    def weight(self) -> float:
        """Return the class's points before the factors."""
        return OBJECT_WEIGHTS.get(self.label, UNKNOWN_WEIGHT)

    @property
    def points(self) -> float:
        """Return weight x confidence factor x crowd factor x presence factor."""
        confidence = CONFIDENCE_FLOOR + (1.0 - CONFIDENCE_FLOOR) * self.confidence
        crowd = _growth(self.at_once, CROWD_BONUS, CROWD_STEP)
        presence = _growth(self.frames, PRESENCE_BONUS, PRESENCE_STEP)
        return self.weight * confidence * crowd * presence


def _fact_label(label: str) -> str:
    """Return a class name as the heuristic names it: one line, bounded, lower case."""
    return clean_text(label, 32).lower()


def class_facts(detections: Sequence[Detection]) -> list[ClassFacts]:
    """Return the facts per class, most points first (ties by name, for a stable order).

    Counted per frame (prompts.frame_key, as the LLM's prompt counts): one person seen in
    twenty snapshots is one person at once in twenty frames, never twenty people.
    """
    frames: dict[str, set[FrameKey]] = defaultdict(set)
    confidence: dict[str, float] = defaultdict(float)
    for detection in detections:
        label = _fact_label(detection.label)
        frames[label].add(frame_key(detection))
        confidence[label] = max(confidence[label], min(1.0, max(0.0, detection.confidence)))
    at_once = most_at_once(detections, _fact_label)
    facts = [
        ClassFacts(
            label=label,
            at_once=at_once[label],
            frames=len(seen),
            confidence=confidence[label],
        )
        for label, seen in frames.items()
    ]
    return sorted(facts, key=lambda fact: (-fact.points, fact.label))


def raw_score(facts: Sequence[ClassFacts], *, night: bool) -> float:
    """Return the unclamped score: the weightiest class, a share of the others, night factor."""
    if not facts:
        return 0.0
    total = facts[0].points + OTHER_CLASS_SHARE * sum(fact.points for fact in facts[1:])
    return total * (NIGHT_FACTOR if night else 1.0)


def plural(label: str, count: int) -> str:
    """Return 'a car', 'an umbrella', '2 people', '3 buses'."""
    if count == 1:
        return f"{'an' if label[:1] in 'aeiou' else 'a'} {label}"
    return f"{count} {_PLURALS.get(label, label + 's')}"


def describe_objects(facts: Sequence[ClassFacts]) -> str:
    """Return '2 people, a car and 3 other objects' (weightiest first), or 'nothing detected'."""
    if not facts:
        return "nothing detected"
    parts = [plural(fact.label, fact.at_once) for fact in facts[:SUMMARY_CLASSES]]
    if rest := facts[SUMMARY_CLASSES:]:
        others = sum(fact.at_once for fact in rest)
        parts.append(f"{others} other object{'s' if others > 1 else ''}")
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _describe_class(fact: ClassFacts) -> str:
    """Return 'person: 2 at once, seen in 3 frames, up to 93% confident'."""
    frames = f"seen in {fact.frames} frames" if fact.frames > 1 else "seen in 1 frame"
    return f"{fact.label}: {fact.at_once} at once, {frames}, up to {fact.confidence:.0%} confident"


def heuristic_verdict(request: AnalysisRequest, thresholds: SeverityThresholds) -> Verdict:
    """Return a rule-based verdict for request (see the module docstring for the rules).

    Deterministic: the same request always gets the same verdict. Used while the LLM is
    unreachable, so the summary and reasoning say so and the source is HEURISTIC.
    """
    local = request.local_start
    night = is_night(local)
    facts = class_facts(request.detections)
    score = max(0, min(100, round(raw_score(facts, night=night)) + request.anomaly_bonus))
    level = level_for(score, thresholds)
    camera = clean_text(request.camera_name, MAX_CAMERA_NAME)
    clock = f"{local:%H:%M}"
    objects = describe_objects(facts)
    summary = f"{objects[:1].upper()}{objects[1:]} at {camera} at {clock}"
    sentences = ["Scored by rules because the AI model could not be asked."]
    if facts:
        sentences.append(
            "Seen: " + "; ".join(_describe_class(fact) for fact in facts[:REASONING_CLASSES]) + "."
        )
        if len(facts) > REASONING_CLASSES:
            sentences.append(f"{len(facts) - REASONING_CLASSES} more kinds of object were seen.")
        if night:
            sentences.append(f"It was night ({clock} local time), which raises the risk.")
        else:
            sentences.append(f"It was daytime ({clock} local time).")
    else:
        sentences.append("No objects were detected, so nothing points to a risk.")
    if request.anomaly_bonus > 0:
        sentences.append(
            f"The activity is unusual for this camera at this hour (+{request.anomaly_bonus})."
        )
    if request.is_fast_path:
        sentences.append("A high-confidence detection was judged at once (fast path).")
    sentences.append(f"Risk score {score} of 100: {level}.")
    verdict = Verdict(
        risk_score=score,
        risk_level=level,
        summary=summary,
        reasoning=" ".join(sentences),
        source=EventSource.HEURISTIC,
    )
    _LOGGER.debug("Heuristic verdict for %s: %s (%s)", camera, score, level)
    return verdict
