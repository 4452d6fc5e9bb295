"""The verifier: an LLM verdict compared with what the detectors saw, before anyone reads it.

A model may name things that are not there (a pattern in the hedge read as a person) or deny
what is (a picture too dark for it, a prompt-injection on a shirt, a small model's slip). The
detections are the ground the system stands on, so:
- each object the model names that maps to no class the detector found in the incident is
  marked unverified (a parcel or an open gate may be real, the detector just has no class for
  it: marked, never removed);
- a verdict that says a class is absent while the detector saw it with at least
  STRONG confidence ("no one is there" beside a person at 95%) is flagged as a contradiction,
  and its score is never below the heuristic's for the same detections: a model that
  contradicts the evidence cannot talk a real threat down.
"""

from collections.abc import Iterable, Sequence
from dataclasses import replace
import re
from typing import Final

from .labels import COCO_LABELS, normalize_label
from .models import Detection, VerdictDetails
from .risk import Verdict, level_for, plural
from .settings import SeverityThresholds

STRONG: Final = 0.8
"""A detection this confident is taken as fact: a verdict denying it contradicts the evidence."""

_PERSON_WORDS: Final = frozenset(
    {
        "adult", "boy", "burglar", "child", "children", "courier", "driver", "figure", "girl",
        "guest", "human", "humans", "individual", "intruder", "kid", "kids", "man", "men",
        "neighbor", "neighbour", "pedestrian", "people", "persons", "postman", "postwoman",
        "resident", "someone", "somebody", "stranger", "thief", "visitor", "woman", "women",
        "worker",
    }
)  # fmt: skip
"""Words a model uses for what the detector calls a person."""

_SYNONYMS: Final[dict[str, frozenset[str]]] = {
    "vehicle": frozenset({"car", "truck", "bus", "motorcycle"}),
    "van": frozenset({"car", "truck"}),
    "suv": frozenset({"car", "truck"}),
    "pickup": frozenset({"truck", "car"}),
    "lorry": frozenset({"truck"}),
    "bike": frozenset({"bicycle", "motorcycle"}),
    "scooter": frozenset({"motorcycle", "bicycle"}),
    "puppy": frozenset({"dog"}),
    "kitten": frozenset({"cat"}),
    "animal": frozenset({"dog", "cat", "bird", "horse", "sheep", "cow", "bear"}),
    "pet": frozenset({"dog", "cat"}),
    "bag": frozenset({"backpack", "handbag", "suitcase"}),
    "luggage": frozenset({"suitcase"}),
    "phone": frozenset({"cell phone"}),
    "weapon": frozenset({"knife", "baseball bat", "scissors"}),
}
"""Other words for COCO classes: the classes a named object may be (any of them backs it)."""

_NOTHING: Final = re.compile(
    r"\b(?:nothing (?:is )?(?:there|here|visible|present|happening|detected|seen)"
    r"|(?:the )?(?:scene|area|frame|image|picture|yard|porch) (?:is|looks|appears) empty"
    r"|empty (?:scene|frame|image|picture))\b"
)
"""Words that deny everything at once."""
_NO_PERSON: Final = re.compile(
    r"\b(?:no ?one|no-one|nobody|no (?:person|people|humans?|visitors?|intruders?)"
    r"|not a (?:person|human)|there is no (?:person|one))\b"
)
"""Words that deny a person."""


def classes_of(name: str) -> frozenset[str]:
    """Return the COCO classes an object the model named may be (none for an unknown word).

    The whole name is tried, then its last and its first word ("delivery person" -> person,
    "person carrying a box" -> person, "red car" -> car); plurals count as the singular.
    """
    plain = normalize_label(name)
    if plain is None:
        return frozenset()
    words = plain.split()
    for candidate in dict.fromkeys((plain, words[-1], words[0])):
        for form in _singulars(candidate):
            if form in COCO_LABELS:
                return frozenset({form})
            if form in _PERSON_WORDS:
                return frozenset({"person"})
            if form in _SYNONYMS:
                return _SYNONYMS[form]
    return frozenset()


def _singulars(word: str) -> Iterable[str]:
    """Return word and the singulars it may be the plural of."""
    yield word
    if word.endswith("ies"):
        yield f"{word[:-3]}y"
    if word.endswith("es"):
        yield word[:-2]
    if word.endswith("s"):
        yield word[:-1]
    if (normal := normalize_label(word)) not in (None, word):
        yield normal


def unverified(objects: Sequence[str], seen: frozenset[str]) -> tuple[str, ...]:
    """Return the objects the model named that no detection of the incident backs."""
    return tuple(name for name in objects if not classes_of(name) & seen)


def _denies(text: str, label: str) -> bool:
    """Return whether text says that label is absent (or that nothing is there at all)."""
    if _NOTHING.search(text):
        return True
    if label == "person":
        return _NO_PERSON.search(text) is not None
    many = plural(label, 2).removeprefix("2 ")
    names = "|".join(re.escape(name) for name in dict.fromkeys((label, many)))
    return re.search(rf"\b(?:no|not a|not any|without an?) (?:{names})\b", text) is not None


def contradiction(verdict: Verdict, detections: Sequence[Detection]) -> str:
    """Return why the verdict denies what the detector saw at STRONG confidence ("" if not)."""
    details = verdict.details or VerdictDetails()
    text = f"{details.title} {verdict.summary} {details.observations}".casefold()
    strongest: dict[str, float] = {}
    for detection in detections:
        if detection.confidence >= STRONG and detection.label in COCO_LABELS:
            strongest[detection.label] = max(
                strongest.get(detection.label, 0.0), detection.confidence
            )
    for label, confidence in sorted(strongest.items(), key=lambda item: -item[1]):
        if _denies(text, label):
            return (
                f"The verdict says no {label} is there; the detector saw one at "
                f"{round(confidence * 100)}%."
            )
    return ""


def check_verdict(
    verdict: Verdict,
    detections: Sequence[Detection],
    heuristic: Verdict,
    thresholds: SeverityThresholds,
) -> Verdict:
    """Return an LLM verdict with the verifier's marks, its score kept up where it contradicts.

    heuristic is the rule-based verdict on the same detections: a contradicting verdict's score
    is raised to it (and its level derived again), never lowered. A verdict without details
    (the heuristic's own) is returned as it is.
    """
    if verdict.details is None:
        return verdict
    seen = frozenset(detection.label for detection in detections)
    details = replace(
        verdict.details,
        unverified=unverified(verdict.details.objects, seen),
        contradiction=contradiction(verdict, detections),
    )
    checked = replace(verdict, details=details)
    if details.contradiction and heuristic.risk_score > verdict.risk_score:
        score = heuristic.risk_score
        checked = replace(checked, risk_score=score, risk_level=level_for(score, thresholds))
    return checked
