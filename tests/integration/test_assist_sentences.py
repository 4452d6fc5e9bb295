"""Assist's default agent answers questions about the cameras, without any LLM.

Each sentence goes through conversation.process to Home Assistant's own default agent, the way
typing it in Assist does; the answers are checked against incidents stored at known times.
Camera names follow the user's cameras (a camera added later is known at once); bad input
(an unknown camera, a 10,000-character question, an object nobody counts) gets a clear answer.
"""

from datetime import datetime, timedelta
from pathlib import Path
import re

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.core.periods import period_bounds

from .test_assist_api import incident, middle
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import set_up, upload_event


async def say(hass: HomeAssistant, text: str) -> str:
    """Return the default agent's answer to text, as Assist shows it."""
    reply = await hass.services.async_call(
        "conversation", "process", {"text": text}, blocking=True, return_response=True
    )
    assert reply is not None
    speech: str = reply["response"]["speech"]["plain"]["speech"]
    return speech


def within(name: str, moment: datetime) -> bool:
    """Return whether moment lies in the named period, as computed now."""
    start, end = period_bounds(name, dt_util.utcnow(), dt_util.get_default_time_zone())
    return start <= moment < end


@pytest.fixture
async def cameras(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> datetime:
    """Conversation first, then the hub, with two cameras; return when their uploads were."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    uploaded = dt_util.utcnow()
    await upload_event(hass, camera_root, "Front Door/a.jpg", 1, events)
    await upload_event(hass, camera_root, "Garden/b.jpg", 2, events)
    return uploaded


async def test_what_happened_at_a_camera(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    cameras: datetime,
) -> None:
    """The period's incidents, counted by level, the riskiest named with their times."""
    _door, add = incident(
        "front_door",
        middle("today"),
        score=90,
        level="critical",
        summary="Someone tried the door handle.",
    )
    await entry.runtime_data.pipeline.db.run(add)
    answer = await say(hass, "What happened at the front door today?")
    assert answer.startswith("Front Door today: 2 incidents, 1 critical and 1 high. ")
    assert re.search(r"Most notable: \d\d:\d\d critical: Someone tried the door handle; ", answer)
    assert answer.endswith("high: Person at the door at night.")
    assert await say(hass, "what happened at the garden yesterday") == (
        "Nothing happened at Garden yesterday."
    )
    _garden, add = incident(
        "garden", middle("today"), score=70, level="high", summary="Someone by the shed."
    )
    await entry.runtime_data.pipeline.db.run(add)
    assert (await say(hass, "what happened in the garden today")).startswith(
        "Garden today: 2 incidents, all high. Most notable: "
    )
    # The period can come first too.
    assert (await say(hass, "what happened today at the front door")).startswith(
        "Front Door today: 2 incidents"
    )


async def test_was_anyone_there(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    cameras: datetime,
    camera_root: Path,
) -> None:
    """Yes with the latest person incident, or no one; a camera added later is known at once."""
    events = async_capture_events(hass, "ai_security_event")
    await upload_event(hass, camera_root, "Driveway/c.jpg", 3, events)
    night = middle("last_night")
    _id, add = incident(
        "driveway", night, score=66, level="high", summary="A person looked into the car"
    )
    await entry.runtime_data.pipeline.db.run(add)
    answer = await say(hass, "Was anyone in the driveway last night?")
    assert answer.startswith("Yes, a person was seen at Driveway last night, in ")
    assert "The latest: " in answer
    if not within("last_night", dt_util.utcnow() - timedelta(minutes=1)):
        assert "in 1 incident. The latest: " in answer
        assert answer.endswith("high: A person looked into the car.")
    assert await say(hass, "was anybody at the garden last week") == (
        "No one was seen at Garden last week."
    )


async def test_how_many(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    cameras: datetime,
) -> None:
    """Visits with people counted per period; a cat is not a person; unknown objects said."""
    db = entry.runtime_data.pipeline.db
    week = middle("this_week")
    for n in range(3):
        _id, add = incident(
            "garden", week + timedelta(minutes=n), score=40, level="medium", summary=f"Visit {n}"
        )
        await db.run(add)
    _id, add = incident("garden", week, score=20, level="low", summary="A cat", objects=("cat",))
    await db.run(add)
    # Three stored this week and the upload just made (a person, judged by the stub LLM).
    assert await say(hass, "How many people at the garden this week?") == (
        "Garden saw people in 4 incidents this week."
    )
    assert await say(hass, "how many cats were in the garden this week") == (
        "Garden saw cats in 1 incident this week."
    )
    assert await say(hass, "how many dogs at the garden this week") == (
        "Garden saw no dogs this week."
    )
    assert (await say(hass, "how many unicorns at the garden today")).startswith(
        "I can count people, cars, trucks"
    )


async def test_bad_questions_get_clear_answers(hass: HomeAssistant, cameras: datetime) -> None:
    """An unknown camera names the real ones; a huge question is cut when repeated."""
    assert await say(hass, "what happened at the moon today") == (
        "I don't know a camera called moon. Your cameras are Front Door and Garden."
    )
    huge = await say(hass, "what happened at the " + "x" * 10_000)
    assert huge.startswith("I don't know a camera called xxx")
    assert len(huge) < 200
    # Not a question of ours: Home Assistant's own answer, nothing from here.
    assert "camera" not in await say(hass, "what is the meaning of life")


async def test_sentences_work_when_conversation_loads_after_the_hub(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """A hub set up before the conversation integration still registers its sentences."""
    assert await async_setup_component(hass, "homeassistant", {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Garden/b.jpg", 2, events)
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    answer = await say(hass, "what happened in the garden today")
    assert answer.startswith("Garden today: 1 incident, high.")
