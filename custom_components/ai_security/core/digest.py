"""A digest of a period in words: written by the LLM when one is set, by a clear template otherwise.

The facts are the period's summary (assist.summarize as plain data: counts per camera and
level, the notable incidents with their times). The LLM gets them as data, never the user's
text, and answers in a small JSON schema (one string), so a grammar-bound llama-server cannot
wander; its answer is cleaned (one paragraph, no control characters, bounded). The template
says the same facts plainly and is the answer whenever the LLM cannot be asked or answers
badly, so a digest is never lost to a model server.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
import json
from typing import Any, Final

from .prompts import clean_text

DIGEST_MAX: Final = 600
"""The longest digest, in characters: five sentences (a phone notification shows less)."""
MAX_TOKENS: Final = 700
"""Room for DIGEST_MAX characters even at one token each (a grammar-bound answer then always
closes before it is cut off), and the JSON around them."""
LEVELS: Final = ("critical", "high", "medium", "low")

SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {"digest": {"type": "string", "minLength": 1, "maxLength": DIGEST_MAX}},
    "required": ["digest"],
    "additionalProperties": False,
}

SYSTEM: Final = (
    "You write a short security digest for a household from their cameras' incidents. "
    "Use only the facts given. Say how many incidents and alerts (high or critical) there were, "
    "name the notable ones with their time and camera, and say plainly when nothing needs "
    "attention. At most five sentences, no lists, no markdown. Answer as JSON: "
    '{"digest": "..."}'
)


def _clock(stamp: str) -> str:
    """Return 'Mon 14:05' from a local ISO time ('2026-11-30T14:05+01:00')."""
    moment = datetime.fromisoformat(stamp)
    return f"{moment:%a %H:%M}"


def _levels(by_level: Mapping[str, int]) -> str:
    return ", ".join(f"{by_level[level]} {level}" for level in LEVELS if by_level.get(level))


def facts(summary: Mapping[str, Any], heading: str) -> str:
    """Return the period's facts as lines of text (the LLM's user message)."""
    lines = [
        f"Period: {heading} ({_clock(summary['from'])} to {_clock(summary['until'])})",
        f"Incidents: {summary['incidents']}",
    ]
    for camera, by_level in summary["by_camera"].items():
        lines.append(f"- {clean_text(camera, 60)}: {_levels(by_level)}")
    if summary["notable"]:
        lines.append("Notable incidents:")
    lines.extend(
        f"- {_clock(item['started'])} at {clean_text(item['camera'], 60)}: {item['level']}, "
        f"{clean_text(item['summary'], 200)} (review: {item['review']})"
        for item in summary["notable"]
    )
    return "\n".join(lines)


def template(summary: Mapping[str, Any], heading: str) -> str:
    """Return the digest in plain words, without an LLM."""
    total = summary["incidents"]
    if not total:
        return f"{heading}: nothing happened at the cameras."
    by_level: dict[str, int] = {}
    for counts in summary["by_camera"].values():
        for level, count in counts.items():
            by_level[level] = by_level.get(level, 0) + count
    alerts = by_level.get("critical", 0) + by_level.get("high", 0)
    cameras = ", ".join(
        f"{name} {sum(counts.values())}" for name, counts in summary["by_camera"].items()
    )
    sentences = [
        f"{heading}: {total} incident{'s' if total != 1 else ''} ({_levels(by_level)}), "
        f"by camera: {cameras}."
    ]
    if alerts:
        notable = [item for item in summary["notable"] if item["level"] in ("critical", "high")]
        sentences.append(
            f"{alerts} alert{'s' if alerts != 1 else ''}: "
            + "; ".join(
                f"{_clock(item['started'])} {item['camera']}, {item['level']}: "
                f"{clean_text(item['summary'], 120).rstrip('.')}"
                for item in notable[:5]
            )
            + "."
        )
    else:
        sentences.append("No alerts: nothing needs attention.")
    return clean_text(" ".join(sentences), DIGEST_MAX)


def parse(answer: str) -> str | None:
    """Return the digest in the LLM's answer, cleaned; None when the answer has none."""
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    text = data.get("digest") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        return None
    return clean_text(text, DIGEST_MAX)


def notable_ids(summary: Mapping[str, Any]) -> Sequence[str]:
    """Return the ids of the incidents the digest names (for links to them)."""
    return [item["id"] for item in summary["notable"]]


__all__ = [
    "DIGEST_MAX",
    "MAX_TOKENS",
    "SCHEMA",
    "SYSTEM",
    "facts",
    "notable_ids",
    "parse",
    "template",
]
