"""Sentences Home Assistant's default agent answers from the cameras' history, without any LLM.

"What happened at the front door today", "was anyone in the driveway last night", "any alerts
while we were away", "how many people at the garden this week": each kind of question is a set
of sentence templates registered with the conversation integration's agent manager as a
trigger, whose callback answers in words. The templates, the period and object words and the
answers live in sentences/<language>.json (English first; a language is one more file), so
they are translated like the rest of the integration.

A template's {where} is free text: the callback finds the period at its end ("front door
today") and the camera in the rest, by the same matching as the LLM API's tools, so the camera
names follow the user's cameras with nothing to reload. "While we were away" is the latest time
the home zone was empty, from the recorder's history of zone.home (the last 24 hours, said so,
when there is no recorder or no such time).
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
import json
import logging
from pathlib import Path
import re
from typing import Any, Final

from hassil.recognize import RecognizeResult
from homeassistant.components.conversation import ConversationInput
from homeassistant.components.conversation.agent_manager import get_agent_manager
from homeassistant.const import EVENT_COMPONENT_LOADED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util import dt as dt_util

from . import assist_data
from .assist_data import CameraRef
from .core.assist import short
from .core.models import RiskLevel
from .core.periods import period_bounds

_LOGGER = logging.getLogger(__name__)

SENTENCES: Final = Path(__file__).parent / "sentences"
SPOKEN_NOTABLE: Final = 3
"""Incidents an answer names aloud: a speaker cannot read ten."""
AWAY_LOOKBACK: Final = timedelta(days=14)
HOME_ZONE: Final = "zone.home"
ECHOED: Final = 60
"""The most of a camera name not found that an answer repeats back."""
_PUNCTUATION: Final = re.compile(r"[^\w\s']+")

type Answer = Callable[[HomeAssistant, "Language", Mapping[str, str]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Language:
    """One language's sentences, words and answers (sentences/<language>.json)."""

    sentences: dict[str, list[str]]
    periods: dict[str, list[str]]
    period_names: dict[str, str]
    objects: dict[str, list[str]]
    object_names: dict[str, str]
    levels: dict[str, str]
    responses: dict[str, str]

    @classmethod
    def load(cls, language: str) -> Language:
        """Read the language's file (English when there is none); in the executor."""
        path = SENTENCES / f"{language}.json"
        if not path.is_file():
            path = SENTENCES / f"{language.split('-', maxsplit=1)[0]}.json"
        if not path.is_file():
            path = SENTENCES / "en.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**data)

    def say(self, key: str, **values: object) -> str:
        """Return the answer key with its placeholders filled."""
        return self.responses[key].format(**values)

    def join(self, items: Sequence[str]) -> str:
        """Return items as a list is said: "a, b and c"."""
        if len(items) <= 1:
            return "".join(items)
        comma, last = self.responses["list_comma"], self.responses["list_and"]
        return comma.join(items[:-1]) + last + items[-1]

    def split_where(self, spoken: str) -> tuple[str, str | None]:
        """Return the camera's words and the period at the end of spoken ("front door today")."""
        text = " ".join(_PUNCTUATION.sub(" ", spoken.casefold()).split())
        best: tuple[int, str, str] | None = None
        for name, phrases in self.periods.items():
            for phrase in phrases:
                said = text == phrase or text.endswith(f" {phrase}")
                if said and (best is None or len(phrase) > best[0]):
                    best = (len(phrase), name, phrase)
        if best is None:
            return text, None
        return text[: len(text) - best[0]].strip(), best[1]

    def period(self, spoken: str | None) -> str | None:
        """Return the period a phrase names, or None."""
        if not spoken:
            return None
        text = " ".join(_PUNCTUATION.sub(" ", spoken.casefold()).split())
        for name, phrases in self.periods.items():
            if text in phrases:
                return name
        return None

    def label(self, spoken: str) -> str | None:
        """Return the object class words name ("people" -> person), or None.

        The whole words first, then the first of them that names one ("cats were" -> cat: a
        sentence's wildcard can take the verb after the object along).
        """
        text = " ".join(_PUNCTUATION.sub(" ", spoken.casefold()).split())
        for candidate in (text, *text.split()):
            for label, words in self.objects.items():
                if candidate in words:
                    return label
        return None


def _time(moment: datetime) -> str:
    """Return a time as said: 14:05 today, Mon 14:05 before."""
    local = dt_util.as_local(moment)
    if local.date() == dt_util.now().date():
        return f"{local:%H:%M}"
    return f"{local:%a %H:%M}"


def _incident(language: Language, item: Mapping[str, Any], *, with_camera: bool) -> str:
    started = datetime.fromisoformat(item["started"])
    time = _time(started)
    if with_camera:
        time = f"{time} {item['camera']}"
    return language.say(
        "incident",
        time=time,
        level=language.levels.get(item["level"], item["level"]),
        summary=item["summary"].rstrip("."),
    )


def _count(language: Language, count: int, one: str, many: str) -> str:
    return language.say(one) if count == 1 else language.say(many, count=count)


async def _where(
    hass: HomeAssistant, language: Language, spoken: str
) -> tuple[list[CameraRef] | None, str | None, str]:
    """Return the cameras and period spoken, or an answer saying what is wrong."""
    words, period = language.split_where(spoken)
    known = assist_data.cameras(hass)
    if not known:
        return None, period, language.say("no_cameras")
    refs = assist_data.match_cameras(hass, words)
    if not refs:
        return (
            None,
            period,
            language.say(
                "unknown_camera",
                camera=short(words or spoken, ECHOED),
                cameras=language.join([ref.name for ref in known]),
            ),
        )
    return refs, period, ""


def _camera_names(language: Language, refs: Sequence[CameraRef]) -> str:
    return language.join(list(dict.fromkeys(ref.name for ref in refs)))


async def what_happened(hass: HomeAssistant, language: Language, slots: Mapping[str, str]) -> str:
    """Answer "what happened at the front door today"."""
    refs, period, problem = await _where(hass, language, slots.get("where", ""))
    if refs is None:
        return problem
    name = language.period(slots.get("when")) or period or "today"
    start, end = period_bounds(name, dt_util.utcnow(), assist_data.local_tz())
    found = await assist_data.summary(hass, refs, start, end, notable=SPOKEN_NOTABLE)
    camera = _camera_names(language, refs)
    when = language.period_names[name]
    if not found["incidents"]:
        return language.say("nothing", camera=camera, period=when)
    levels: dict[str, int] = {}
    for by_level in found["by_camera"].values():
        for level, count in by_level.items():
            levels[level] = levels.get(level, 0) + count
    order = [level.value for level in reversed(RiskLevel)]
    if len(levels) == 1:
        # One level: "1 incident, high" or "6 incidents, all medium", not "6 incidents, 6 medium".
        (only,) = levels
        level_words = language.levels[only]
        if found["incidents"] > 1:
            level_words = language.say("all_level", level=level_words)
    else:
        level_words = language.join(
            [f"{levels[level]} {language.levels[level]}" for level in order if level in levels]
        )
    notable = language.say(
        "most_notable",
        items="; ".join(
            _incident(language, item, with_camera=len(refs) > 1) for item in found["notable"]
        ),
    )
    return language.say(
        "happened",
        camera=camera,
        period=when,
        count=_count(language, found["incidents"], "one_incident", "incidents"),
        levels=level_words,
        notable=notable,
    )


async def anyone(hass: HomeAssistant, language: Language, slots: Mapping[str, str]) -> str:
    """Answer "was anyone in the driveway last night"."""
    refs, period, problem = await _where(hass, language, slots.get("where", ""))
    if refs is None:
        return problem
    name = period or "today"
    start, end = period_bounds(name, dt_util.utcnow(), assist_data.local_tz())
    counts = await assist_data.count(hass, refs, start, end, "person")
    camera = _camera_names(language, refs)
    when = language.period_names[name]
    total = sum(counts.values())
    if not total:
        return language.say("nobody", camera=camera, period=when)
    latest = await assist_data.search(
        hass, refs, text="person", start=start, end=end, min_level=None, reviewed=None, limit=1
    )
    items = latest["incidents"]
    return language.say(
        "somebody",
        camera=camera,
        period=when,
        count=_count(language, total, "one_incident", "incidents"),
        latest=_incident(language, items[0], with_camera=len(refs) > 1) if items else "",
    )


async def away_period(hass: HomeAssistant) -> tuple[datetime, datetime, bool] | None:
    """Return the latest time nobody was home (start, end, still away), from the recorder.

    None without a recorder, or when the home zone did not go from someone to nobody in
    AWAY_LOOKBACK.
    """
    if "recorder" not in hass.config.components:
        return None
    from homeassistant.components.recorder import history  # noqa: PLC0415
    from homeassistant.helpers.recorder import get_instance  # noqa: PLC0415

    now = dt_util.utcnow()
    changes = await get_instance(hass).async_add_executor_job(
        history.state_changes_during_period, hass, now - AWAY_LOOKBACK, now, HOME_ZONE, True
    )
    away: tuple[datetime, datetime, bool] | None = None
    left: datetime | None = None
    seen_home = False
    for state in changes.get(HOME_ZONE, []):
        empty = state.state == "0"
        if not empty and state.state.isdigit():
            seen_home = True
        # Only an emptying seen happen is a departure: a zone empty all along (nobody's
        # presence is tracked, or the history starts empty) says nothing of when you left.
        if empty and left is None and seen_home:
            left = state.last_changed
        elif not empty and left is not None:
            away = (left, state.last_changed, False)
            left = None
    if left is not None:
        away = (left, now, True)
    return away


async def while_away(hass: HomeAssistant, language: Language, slots: Mapping[str, str]) -> str:
    """Answer "any alerts while we were away": incidents at high or above in that time."""
    if not assist_data.cameras(hass):
        return language.say("no_cameras")
    found = await away_period(hass)
    if found is None:
        end = dt_util.utcnow()
        start = end - timedelta(days=1)
        when = language.say("away_unknown")
    else:
        start, end, still = found
        when = (
            language.say("away_now", start=_time(start))
            if still
            else language.say("away_since", start=_time(start), end=_time(end))
        )
    summary = await assist_data.summary(
        hass, None, start, end, min_level=RiskLevel.HIGH, notable=SPOKEN_NOTABLE
    )
    if not summary["incidents"]:
        return language.say("no_alerts", period=when)
    return language.say(
        "alerts",
        count=_count(language, summary["incidents"], "one_alert", "alerts_count"),
        period=when,
        items="; ".join(_incident(language, item, with_camera=True) for item in summary["notable"]),
    )


async def how_many(hass: HomeAssistant, language: Language, slots: Mapping[str, str]) -> str:
    """Answer "how many people at the garden this week": incidents (visits) with them."""
    label = language.label(slots.get("what", ""))
    if label is None:
        return language.say(
            "unknown_object", objects=language.join(list(language.object_names.values()))
        )
    refs, period, problem = await _where(hass, language, slots.get("where", ""))
    if refs is None:
        return problem
    name = period or "today"
    start, end = period_bounds(name, dt_util.utcnow(), assist_data.local_tz())
    counts = await assist_data.count(hass, refs, start, end, label)
    total = sum(counts.values())
    camera = _camera_names(language, refs)
    when = language.period_names[name]
    objects = language.object_names[label]
    if not total:
        return language.say("counted_none", camera=camera, objects=objects, period=when)
    return language.say(
        "counted",
        camera=camera,
        objects=objects,
        count=_count(language, total, "one_incident", "incidents"),
        period=when,
    )


ANSWERS: Final[dict[str, Answer]] = {
    "what_happened": what_happened,
    "anyone": anyone,
    "away": while_away,
    "count": how_many,
}


async def async_register_sentences(hass: HomeAssistant) -> None:
    """Register the sentences with the default agent, now or once conversation is loaded."""
    if "conversation" in hass.config.components:
        await _register(hass)
        return

    @callback
    def loaded(event: Event) -> None:
        if event.data.get("component") == "conversation":
            cancel()
            hass.async_create_task(_register(hass), "ai_security register sentences")

    cancel = hass.bus.async_listen(EVENT_COMPONENT_LOADED, loaded)


async def _register(hass: HomeAssistant) -> None:
    language = await hass.async_add_executor_job(Language.load, hass.config.language)
    manager = get_agent_manager(hass)
    for kind, answer in ANSWERS.items():
        manager.register_trigger(language.sentences[kind], _responder(hass, language, answer))


def _responder(
    hass: HomeAssistant, language: Language, answer: Answer
) -> Callable[[ConversationInput, RecognizeResult], Awaitable[str | None]]:
    async def respond(user_input: ConversationInput, result: RecognizeResult) -> str | None:
        slots = {name: str(entity.value) for name, entity in result.entities.items()}
        try:
            return await answer(hass, language, slots)
        except Exception:
            _LOGGER.exception("Answering %r failed", user_input.text)
            raise

    return respond
