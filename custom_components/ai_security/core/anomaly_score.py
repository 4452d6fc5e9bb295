"""How unusual a batch is against its camera's usual counts, and how that is said and weighed.

How unusual a batch is: per class, score = (count - typical) / sqrt(typical + 1), how many
standard deviations of a Poisson count the batch sits above the usual (the + 1 keeps one object
where none is usual from counting as infinitely surprising), capped at MAX_SCORE. The batch's
score is the highest of its classes; a class from UNUSUAL_SCORE up is unusual: 4 people where 0.2
is usual score 3.5, one person where one is usual scores 0, one cat where none is usual scores 1.
Fewer objects than usual never count: absence is not a threat.

It is separate from baseline.py, which learns the usual counts in the database, because judging
is plain arithmetic on two sets of counts: the prompt's line and the heuristic's bonus follow
from it without a session.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import math
from typing import Final

MAX_LABEL: Final = 64
"""The length of BaselineRow.label: a class is judged under the label it is stored by."""
UNUSUAL_SCORE: Final = 2.0
"""A class this many standard deviations above its usual count is unusual."""
MAX_SCORE: Final = 10.0
"""Scores are capped here: beyond it, more objects tell nothing more."""
BONUS_PER_POINT: Final = 2.5
"""Risk points per point of anomaly score, for unusual classes only (2 -> 5, 8 and more -> 20)."""
MAX_BONUS: Final = 20
MAX_DESCRIBED: Final = 3
"""Unusual classes named in the prompt, most unusual first."""
LEARNING_TEXT: Final = "learning the usual activity (first week)"


@dataclass(frozen=True, kw_only=True, slots=True)
class UnusualClass:
    """A class seen more often than usual at this hour."""

    label: str
    count: int
    typical: float
    """The usual count of the class in this hour of the week."""
    score: float
    """Standard deviations above typical (see the module docstring)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Anomaly:
    """How unusual a batch is for its camera and hour of the week.

    While learning nothing is judged: score 0, no unusual classes.
    """

    score: float
    """0 = typical (or fewer objects than usual); higher = more unusual; at most MAX_SCORE."""
    unusual: tuple[UnusualClass, ...] = ()
    """The classes from UNUSUAL_SCORE up, most unusual first."""
    learning: bool = False


LEARNING: Final = Anomaly(score=0.0, learning=True)


def _clean_label(label: str) -> str | None:
    """Return the label as stored (trimmed to the column), None for reserved or empty ones."""
    label = label.strip()[:MAX_LABEL]
    return None if not label or label.startswith("__") else label


def clean_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Return the positive counts by stored label (labels that clean to the same one add up)."""
    cleaned: dict[str, int] = {}
    for label, count in counts.items():
        key = _clean_label(label)
        if key is not None and count > 0:
            cleaned[key] = cleaned.get(key, 0) + int(count)
    return cleaned


def anomaly(counts: Mapping[str, int], expected: Mapping[str, float], *, learning: bool) -> Anomaly:
    """Return how far counts sit above the usual counts expected (see the module docstring)."""
    if learning:
        return LEARNING
    unusual: list[UnusualClass] = []
    score = 0.0
    for label, count in clean_counts(counts).items():
        typical = max(0.0, expected.get(label, 0.0))
        class_score = min(MAX_SCORE, max(0.0, (count - typical) / math.sqrt(typical + 1.0)))
        class_score = round(class_score, 2)
        score = max(score, class_score)
        if class_score >= UNUSUAL_SCORE:
            unusual.append(
                UnusualClass(label=label, count=count, typical=typical, score=class_score)
            )
    unusual.sort(key=lambda item: (-item.score, item.label))
    return Anomaly(score=score, unusual=tuple(unusual))


def _typical(value: float) -> str:
    """Return '0.2', '0', '12.5': one decimal, no trailing zero."""
    return f"{round(value, 1):g}"


def _prompt_label(label: str) -> str:
    """Return a label on one line without control characters (it goes into the prompt)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in label).split())[:24] or "?"


def describe(anomaly: Anomaly) -> str:
    """Return the prompt's line: 'unusual: 4 person, typical 0.2 at this hour', or ''.

    While learning, says so, so neither the model nor a person reads the silence as normal.
    """
    if anomaly.learning:
        return LEARNING_TEXT
    if not anomaly.unusual:
        return ""
    parts = [
        f"{item.count} {_prompt_label(item.label)}, typical {_typical(item.typical)}"
        for item in anomaly.unusual[:MAX_DESCRIBED]
    ]
    return f"unusual: {'; '.join(parts)} at this hour"


def heuristic_bonus(anomaly: Anomaly, importance: Callable[[str], float] | None = None) -> int:
    """Return risk points (0 to MAX_BONUS) the heuristic scorer adds for unusual activity.

    BONUS_PER_POINT per point of score of the most unusual class, times its importance (0-1,
    clamped; 1 for every class when None), so the scorer can keep an unusual flock of birds
    from weighing like unusual people: pass e.g. the class's weight divided by a person's.
    Nothing while learning or when nothing is unusual.
    """
    best = 0.0
    for item in anomaly.unusual:
        weight = 1.0 if importance is None else min(1.0, max(0.0, importance(item.label)))
        best = max(best, BONUS_PER_POINT * item.score * weight)
    return min(MAX_BONUS, round(best))
