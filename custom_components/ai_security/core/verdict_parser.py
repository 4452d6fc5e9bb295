"""The model's answer read as a verdict: checked, bounded, its level derived from the score.

Tolerant of what models do (a code fence, extra keys, a float score with an integral value, a
level in any case), strict about what a verdict needs (a JSON object, a score in 0-100, a
summary and a reasoning that say something).
"""

from collections.abc import Mapping
import json
import logging
import re
from typing import Final

from .llm_errors import AnalyzerError
from .models import EventSource, VerdictDetails
from .prompts import (
    CONCERN_MAX,
    MAX_CONCERNS,
    MAX_OBJECTS,
    OBJECT_MAX,
    OBSERVATIONS_MAX,
    RISK_LEVELS,
    TITLE_MAX,
)
from .risk import Verdict, level_for
from .settings import SeverityThresholds

_LOGGER = logging.getLogger(__name__)

SNIPPET: Final = 120
"""Characters of a bad answer quoted in an error message."""
MAX_MODEL_LEVEL: Final = 32
"""Characters kept of a level the model named that disagrees with the derived one."""

_FENCE = re.compile(r"^```[A-Za-z]*\s*(?P<body>.*?)\s*```$", re.DOTALL)
"""A Markdown code fence around the whole answer, with or without a language tag."""


def snippet(text: str) -> str:
    """Return the start of text on one line, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else f"{flat[: SNIPPET - 3]}..."


def _score(value: object) -> int:
    """Return the risk score as an int: an integer, or a float with an integral value, 0-100."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnalyzerError(f"risk_score is not a number: {snippet(repr(value))}")
    if isinstance(value, float):
        if not value.is_integer():
            raise AnalyzerError(f"risk_score is not a whole number: {value!r}")
        value = int(value)
    if not 0 <= value <= 100:
        raise AnalyzerError(f"risk score out of range (0-100): {value}")
    return value


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _text(data: Mapping[str, object], key: str, limit: int) -> str:
    """Return the stripped string at key, cut to limit characters; empty or not text fails."""
    value = data[key]
    if not isinstance(value, str):
        raise AnalyzerError(f"{key} is not a string: {snippet(repr(value))}")
    # JSON may escape half a character ("\ud83d" alone): text the database, the bus and the
    # phone cannot carry. Each such half becomes U+FFFD, the rest of the verdict stays.
    text = _LONE_SURROGATE.sub("\ufffd", value).strip()
    if not text:
        raise AnalyzerError(f"{key} is empty")
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    return f"{text[: limit - 3].rstrip()}..."


_CONTROL: Final = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)
"""Control, zero-width and direction-changing characters: nothing a reader should get from a
model (they can hide or reorder text in a notification), so they are removed."""


def _optional_text(data: Mapping[str, object], key: str, limit: int, *, one_line: bool) -> str:
    """Return a further field's text (cleaned, cut to limit), or "" when absent or not text.

    The further fields are the model's extra words, not what a verdict needs: one that is
    missing or malformed is left out, never a reason to refuse the verdict.
    """
    value = data.get(key)
    if not isinstance(value, str):
        if value is not None:
            _LOGGER.debug("Ignoring the LLM's %s: not text (%s)", key, snippet(repr(value)))
        return ""
    value = _CONTROL.sub(" " if one_line else "", _LONE_SURROGATE.sub("\ufffd", value))
    if one_line:
        value = " ".join(value.split())
    value = value.strip()
    if len(value) <= limit:
        return value
    return f"{value[: max(limit - 3, 0)].rstrip()}..."[:limit]


def _optional_list(data: Mapping[str, object], key: str, items: int, limit: int) -> tuple[str, ...]:
    """Return a further field's list of short texts: at most items, each cleaned and cut."""
    value = data.get(key)
    if not isinstance(value, list):
        return ()
    found: list[str] = []
    for item in value:
        text = _optional_text({key: item}, key, limit, one_line=True)
        if text and text not in found:
            found.append(text)
        if len(found) == items:
            break
    return tuple(found)


def _confidence(value: object) -> float | None:
    """Return the model's confidence as 0-1: asked in percent; a fraction is taken too.

    An integer is percent (1 is 1%); a decimal up to 1 is a fraction (AI Task entities answer
    numbers as decimals: 85.0 is 85%, 0.85 and 1.0 are fractions).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and 0 < value <= 1:
        return round(value, 3)
    if not 0 <= value <= 100:
        return None
    return round(value / 100, 3)


def parse_details(
    data: Mapping[str, object], *, summary_max: int = 200, reasoning_max: int = 1000
) -> VerdictDetails:
    """Return the answer's further fields: title, observations, confidence, objects, concerns."""
    short = min(summary_max, TITLE_MAX)
    return VerdictDetails(
        title=_optional_text(data, "title", short, one_line=True),
        observations=_optional_text(
            data, "observations", min(reasoning_max, OBSERVATIONS_MAX), one_line=False
        ),
        confidence=_confidence(data.get("confidence")),
        objects=_optional_list(data, "objects", MAX_OBJECTS, min(short, OBJECT_MAX)),
        concerns=_optional_list(
            data, "other_concerns", MAX_CONCERNS, min(summary_max, CONCERN_MAX)
        ),
    )


def parse_verdict(
    text: str,
    thresholds: SeverityThresholds,
    *,
    summary_max: int = 200,
    reasoning_max: int = 1000,
) -> Verdict:
    """Return the verdict in the model's answer text, or raise AnalyzerError saying what is wrong.

    Tolerated: blanks and a Markdown code fence around the JSON, extra keys, a float score with
    an integral value, a risk_level in any case or unknown (the stored level is derived from the
    score; a disagreeing one is kept as model_level), over-long summary or reasoning (cut),
    further fields (title, observations, confidence, objects, other_concerns) missing or
    malformed (left out: see parse_details). Refused: no JSON object, a missing key, a score
    that is not a number or not in 0-100, an empty summary or reasoning.
    """
    body = text.strip()
    if fenced := _FENCE.match(body):
        body = fenced["body"]
    if not body:
        raise AnalyzerError("the answer is empty")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise AnalyzerError(f"the answer is not JSON: {snippet(body)}") from err
    if not isinstance(data, dict):
        raise AnalyzerError(f"the answer is not a JSON object: {snippet(body)}")
    if missing := [
        key for key in ("risk_score", "risk_level", "summary", "reasoning") if key not in data
    ]:
        raise AnalyzerError(f"the answer lacks {', '.join(missing)}: {snippet(body)}")
    score = _score(data["risk_score"])
    said = data["risk_level"]
    if not isinstance(said, str):
        raise AnalyzerError(f"risk_level is not a string: {snippet(repr(said))}")
    summary = _text(data, "summary", summary_max)
    reasoning = _text(data, "reasoning", reasoning_max)
    level = level_for(score, thresholds)
    said = said.strip().lower()
    model_level: str | None = None
    if said != level.value:
        model_level = said[:MAX_MODEL_LEVEL]
        _LOGGER.debug(
            "The LLM named level %r for score %d; the thresholds make it %s%s",
            model_level,
            score,
            level,
            "" if said in RISK_LEVELS else " (not a known level)",
        )
    return Verdict(
        risk_score=score,
        risk_level=level,
        summary=summary,
        reasoning=reasoning,
        source=EventSource.LLM,
        model_level=model_level,
        details=parse_details(data, summary_max=summary_max, reasoning_max=reasoning_max),
    )
