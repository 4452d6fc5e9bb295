"""'Any alerts while we were away?': the away time comes from the recorder's history of zone.home.

A real recorder records a person leaving (the home zone empties) and coming back; incidents
stored before, during and after are told apart: only the alerts (high and above) of the away
time are said. Without a recorder the answer says it covers the last 24 hours instead.
"""

from datetime import timedelta
from pathlib import Path

from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from .test_assist_api import incident
from .test_assist_sentences import say
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import set_up, upload_event


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_db_url: str, enable_custom_integrations: None) -> None:
    """Enable custom integrations, after preparing the recorder's database as it requires."""


async def test_alerts_while_away_come_from_the_zones_history(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """Only the alerts of the time nobody was home, with that time said."""
    for component in ("homeassistant", "conversation", "zone", "person"):
        assert await async_setup_component(hass, component, {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Front Door/a.jpg", 1, events)
    db = entry.runtime_data.pipeline.db

    # Nobody's presence known yet: the zone is empty all along, which is no departure.
    await async_wait_recording_done(hass)
    assert (await say(hass, "any alerts while we were away")).startswith(
        "1 alert in the last 24 hours (I can't tell when you were away)"
    )
    home = {"in_zones": ["zone.home"]}
    hass.states.async_set("person.alex", "home", home)
    await hass.async_block_till_done()
    assert hass.states.get("zone.home").state == "1"
    await async_wait_recording_done(hass)
    before = dt_util.utcnow()

    hass.states.async_set("person.alex", "not_home", {"in_zones": []})
    await hass.async_block_till_done()
    assert hass.states.get("zone.home").state == "0"
    await async_wait_recording_done(hass)
    # Still away: "since you left".
    _id, add = incident(
        "front_door",
        dt_util.utcnow(),
        score=92,
        level="critical",
        summary="A window was broken",
    )
    await db.run(add)
    away = await say(hass, "any alerts while we were away")
    assert away.startswith("1 alert since you left at ")
    assert away.endswith("Front Door critical: A window was broken.")

    _id, add = incident(
        "front_door", dt_util.utcnow(), score=40, level="medium", summary="A cat on the path"
    )
    await db.run(add)
    hass.states.async_set("person.alex", "home", home)
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    # Before leaving and after coming back: not "while away".
    for moment, summary in (
        (before - timedelta(minutes=30), "A parcel before leaving"),
        (dt_util.utcnow() + timedelta(seconds=1), "A knock after coming back"),
    ):
        _id, add = incident("front_door", moment, score=88, level="critical", summary=summary)
        await db.run(add)
    answer = await say(hass, "Were there any alerts while we were away?")
    assert answer.startswith("1 alert while you were away, from ")
    assert "A window was broken" in answer
    assert "parcel" not in answer
    assert "knock" not in answer
    assert "cat" not in answer  # medium: not an alert


async def test_without_a_recorder_the_last_day_is_said(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """No history to read: the answer covers the last 24 hours, and says so."""
    assert "recorder" not in hass.config.components
    for component in ("homeassistant", "conversation"):
        assert await async_setup_component(hass, component, {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Front Door/a.jpg", 1, events)
    answer = await say(hass, "any alerts while I was away")
    assert answer.startswith("1 alert in the last 24 hours (I can't tell when you were away): ")
