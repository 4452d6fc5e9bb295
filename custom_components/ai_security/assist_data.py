"""The event history as Assist reads it, over every loaded hub: cameras by name, periods, answers.

The LLM API's tools (assist_api.py) and the default agent's sentences (assist_sentences.py)
both come here, so a camera is found the same way and an answer has the same shape and bounds
whoever asks. Each hub has its own database; a question about several cameras asks each hub
for its own and merges the answers. Answers are plain data without file paths or media.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import partial
import re
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .coordinator import AiSecurityConfigEntry
from .core.assist import (
    MAX_NOTABLE,
    PeriodSummary,
    brief,
    count_with_object,
    latest_incident,
    short,
    summarize,
)
from .core.events import EventQuery, search_events
from .core.models import RiskLevel, SecurityEvent

_NOT_NAME: Final = re.compile(r"[^\w]+")
_FILLER: Final = frozenset({"the", "camera", "cam", "a", "my", "our"})

__all__ = [
    "CameraRef",
    "cameras",
    "count",
    "latest",
    "local_tz",
    "match_cameras",
    "search",
    "status",
    "summary",
]


@dataclass(frozen=True, slots=True)
class CameraRef:
    """A camera of a loaded hub."""

    entry: AiSecurityConfigEntry
    camera_id: str
    name: str


def local_tz() -> tzinfo:
    """Return the household's time zone (Home Assistant's)."""
    return dt_util.get_default_time_zone()


def cameras(hass: HomeAssistant) -> list[CameraRef]:
    """Return every camera of every loaded hub, by name."""
    found: list[CameraRef] = []
    entry: AiSecurityConfigEntry
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        found.extend(
            CameraRef(entry, camera.camera_id, camera.name)
            for camera in entry.runtime_data.pipeline.cameras.values()
        )
    return sorted(found, key=lambda ref: ref.name.casefold())


def _words(text: str) -> str:
    words = _NOT_NAME.sub(" ", text.casefold()).split()
    return " ".join(word for word in words if word not in _FILLER)


def match_cameras(hass: HomeAssistant, spoken: str) -> list[CameraRef]:
    """Return the cameras spoken names ("the front door", "front_door", "Garden camera").

    A whole name or id matches first; otherwise every camera whose name holds the words, or
    whose words the spoken ones hold. Empty when none does.
    """
    wanted = _words(spoken)
    if not wanted:
        return []
    known = cameras(hass)
    exact = [ref for ref in known if wanted in (_words(ref.name), _words(ref.camera_id))]
    if exact:
        return exact
    return [
        ref for ref in known if (name := _words(ref.name)) and (wanted in name or name in wanted)
    ]


def _by_entry(
    refs: Sequence[CameraRef] | None, hass: HomeAssistant
) -> list[tuple[AiSecurityConfigEntry, list[str]]]:
    """Return (entry, camera ids) to ask: every hub with all its cameras when refs is None."""
    if refs is None:
        return [(entry, []) for entry in hass.config_entries.async_loaded_entries(DOMAIN)]
    grouped: dict[str, tuple[AiSecurityConfigEntry, list[str]]] = {}
    for ref in refs:
        grouped.setdefault(ref.entry.entry_id, (ref.entry, []))[1].append(ref.camera_id)
    return list(grouped.values())


def _names(hass: HomeAssistant) -> dict[tuple[str, str], str]:
    return {(ref.entry.entry_id, ref.camera_id): ref.name for ref in cameras(hass)}


async def summary(
    hass: HomeAssistant,
    refs: Sequence[CameraRef] | None,
    start: datetime,
    end: datetime,
    *,
    min_level: RiskLevel | None = None,
    notable: int = 5,
    links: bool = False,
) -> dict[str, Any]:
    """Return the period's incidents of the cameras (all when None): counts and notable ones.

    links adds each notable incident's media-source id ("media_id"), for the digest's links;
    the tools leave it out, as it holds the hub's id.
    """
    tz = local_tz()
    names = _names(hass)
    total = 0
    levels: dict[str, dict[str, int]] = {}
    named: list[tuple[SecurityEvent, str, str]] = []
    for entry, camera_ids in _by_entry(refs, hass):
        found: PeriodSummary = await entry.runtime_data.pipeline.db.run(
            partial(
                summarize,
                camera_ids=camera_ids,
                start=start,
                end=end,
                min_level=min_level,
                notable=notable,
            )
        )
        total += found.total
        for camera_id, by_level in found.levels.items():
            name = names.get((entry.entry_id, camera_id), camera_id)
            into = levels.setdefault(name, {})
            for level, count in by_level.items():
                into[level] = into.get(level, 0) + count
        named.extend(
            (event, names.get((entry.entry_id, event.camera_id), event.camera_id), entry.entry_id)
            for event in found.notable
        )
    named.sort(key=lambda item: (item[0].risk_score, item[0].started_at), reverse=True)
    chosen = named[: min(notable, MAX_NOTABLE)]
    order = [level.value for level in RiskLevel]
    return {
        "from": start.astimezone(tz).isoformat(timespec="minutes"),
        "until": end.astimezone(tz).isoformat(timespec="minutes"),
        "incidents": total,
        "by_camera": {
            name: {level: by_level[level] for level in order if level in by_level}
            for name, by_level in sorted(levels.items())
        },
        "notable": [
            brief(event, name, tz) | (_media(entry_id, event, tz) if links else {})
            for event, name, entry_id in chosen
        ],
    }


def _media(entry_id: str, event: SecurityEvent, tz: tzinfo) -> dict[str, str]:
    """Return where the media browser shows the incident (media_source.py's identifiers)."""
    day = event.started_at.astimezone(tz).date().isoformat()
    return {
        "media_id": f"media-source://{DOMAIN}/{entry_id}/{event.camera_id}/{day}/{event.event_id}"
    }


async def count(
    hass: HomeAssistant,
    refs: Sequence[CameraRef] | None,
    start: datetime,
    end: datetime,
    label: str,
) -> dict[str, int]:
    """Return per camera name the incidents of the period in which label was detected."""
    names = _names(hass)
    counts: dict[str, int] = {}
    for entry, camera_ids in _by_entry(refs, hass):
        found = await entry.runtime_data.pipeline.db.run(
            partial(count_with_object, camera_ids=camera_ids, start=start, end=end, label=label)
        )
        for camera_id, number in found.items():
            name = names.get((entry.entry_id, camera_id), camera_id)
            counts[name] = counts.get(name, 0) + number
    return counts


async def latest(hass: HomeAssistant, refs: Sequence[CameraRef] | None) -> dict[str, Any] | None:
    """Return the latest incident of the cameras (all when None), or None."""
    names = _names(hass)
    best: tuple[SecurityEvent, str] | None = None
    for entry, camera_ids in _by_entry(refs, hass):
        event = await entry.runtime_data.pipeline.db.run(
            partial(latest_incident, camera_ids=camera_ids)
        )
        if event is not None and (best is None or event.started_at > best[0].started_at):
            best = (event, names.get((entry.entry_id, event.camera_id), event.camera_id))
    return None if best is None else brief(best[0], best[1], local_tz())


async def search(
    hass: HomeAssistant,
    refs: Sequence[CameraRef] | None,
    *,
    text: str,
    start: datetime | None,
    end: datetime | None,
    min_level: RiskLevel | None,
    reviewed: bool | None,
    limit: int,
) -> dict[str, Any]:
    """Return the latest incidents matching the search, at most limit, and how many match."""
    tz = local_tz()
    names = _names(hass)
    total = 0
    found: list[tuple[SecurityEvent, str]] = []
    for entry, camera_ids in _by_entry(refs, hass):
        query = EventQuery(
            text=text,
            camera_ids=tuple(camera_ids),
            min_level=min_level,
            start=start,
            end=end,
            reviewed=reviewed,
            page_size=limit,
        )
        page = await entry.runtime_data.pipeline.db.run(partial(search_events, query=query))
        total += page.total
        found.extend(
            (event, names.get((entry.entry_id, event.camera_id), event.camera_id))
            for event in page.events
        )
    found.sort(key=lambda item: item[0].started_at, reverse=True)
    return {
        "matching": total,
        "incidents": [brief(event, name, tz) for event, name in found[:limit]],
    }


def status(hass: HomeAssistant, refs: Sequence[CameraRef] | None) -> list[dict[str, Any]]:
    """Return each camera's state now: its risk, whether something is going on, what is paused."""
    now = dt_util.utcnow()
    tz = local_tz()
    chosen = refs if refs is not None else cameras(hass)
    answer = []
    for ref in chosen:
        hub = ref.entry.runtime_data.hub
        state = hub.cameras.get(ref.camera_id)
        if state is None:
            continue
        controls = hub.controls.controls_of(ref.camera_id)
        current = state.current_event(now)
        answer.append(
            {
                "camera": ref.name,
                "camera_id": ref.camera_id,
                "risk_level": current.risk_level.value if current else "clear",
                "risk_score": current.risk_score if current else 0,
                "current_incident": short(current.summary) if current else None,
                "activity": state.active,
                "detections_today": state.detections_today,
                "learned_false_alarms_today": state.suppressed_today,
                "alerts_paused": not controls.alerts,
                "alerts_paused_until": (
                    controls.snoozed_until.astimezone(tz).isoformat(timespec="minutes")
                    if controls.snoozed_until
                    else None
                ),
                "detection_paused": not controls.detection,
                "last_detection": (
                    state.last_detection_at.astimezone(tz).isoformat(timespec="minutes")
                    if state.last_detection_at
                    else None
                ),
            }
        )
    return answer
