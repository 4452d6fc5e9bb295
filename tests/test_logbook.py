"""Logbook lines for security events, on the camera's event entity."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.models import Camera
from custom_components.ai_security.logbook import async_describe_events, security_event_entity

type Describe = Callable[[Any], dict[str, str]]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_db_url: str, enable_custom_integrations: None) -> None:
    """Enable custom integrations, after preparing the recorder's database as it requires."""


def describers(hass: HomeAssistant) -> dict[str, tuple[str, Describe]]:
    """Return what the integration registers with the logbook, by event type."""
    found: dict[str, tuple[str, Describe]] = {}

    def collect(domain: str, event_type: str, describe: Describe) -> None:
        found[event_type] = (domain, describe)

    async_describe_events(hass, collect)
    return found


def describe(hass: HomeAssistant, event_type: str, data: dict[str, Any]) -> dict[str, str]:
    _domain, describer = describers(hass)[event_type]
    return describer(SimpleNamespace(data=data))


def add_camera(entry: MockConfigEntry, camera_id: str, name: str) -> None:
    entry.runtime_data.pipeline.callbacks.camera_added(
        Camera(camera_id=camera_id, name=name, folder=name)
    )


EVENT = {
    "event_id": "abc",
    "camera_id": "front_door",
    "camera_name": "Front Door",
    "risk_level": "high",
    "risk_score": 72,
    "summary": "person near the entrance",
}


async def test_registered_events(hass: HomeAssistant) -> None:
    found = describers(hass)
    assert {event: domain for event, (domain, _) in found.items()} == {
        "ai_security_event": DOMAIN,
    }


async def test_message_and_entity(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The line reads "High risk at Front Door: ..." on the camera's security event entity."""
    add_camera(init_integration, "front_door", "Front Door")
    await hass.async_block_till_done()
    device_id = init_integration.runtime_data.hub.device_ids["front_door"]

    described = describe(hass, "ai_security_event", {**EVENT, "device_id": device_id})
    assert described == {
        "name": "AI Security",
        "message": "High risk at Front Door: person near the entrance",
        "entity_id": "event.front_door_security_event",
    }


async def test_incomplete_or_unknown_events(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Old or odd events still give a line; an unknown camera gives no entity."""
    assert describe(hass, "ai_security_event", {}) == {
        "name": "AI Security",
        "message": "Unknown risk at a camera",
    }
    assert describe(
        hass,
        "ai_security_event",
        {"camera_id": "ghost", "risk_level": "critical", "summary": "  two\n lines "},
    ) == {"name": "AI Security", "message": "Critical risk at ghost: two lines"}


async def test_camera_of_several_hubs(
    hass: HomeAssistant, init_integration: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    """Two hubs with a camera of the same id: the event's entry id (or device) tells them apart."""
    add_camera(init_integration, "front_door", "Front Door")
    await hass.async_block_till_done()
    other = MockConfigEntry(domain=DOMAIN, title="Other")
    other.add_to_hass(hass)
    twin = entity_registry.async_get_or_create(
        "event",
        DOMAIN,
        f"{other.entry_id}_front_door_security_event",
        config_entry=other,
        suggested_object_id="other_front_door_security_event",
    )
    ours = "event.front_door_security_event"
    device_id = init_integration.runtime_data.hub.device_ids["front_door"]
    assert security_event_entity(hass, "front_door", device_id) == ours
    assert security_event_entity(hass, "front_door", "another-device") is None
    assert security_event_entity(hass, "front_door", None) is None  # ambiguous
    # Events carry their hub's entry id: that alone tells the hubs apart.
    assert security_event_entity(hass, "front_door", None, init_integration.entry_id) == ours
    assert security_event_entity(hass, "front_door", None, other.entry_id) == twin.entity_id
    described = describe(hass, "ai_security_event", {**EVENT, "entry_id": other.entry_id})
    assert described["entity_id"] == twin.entity_id
    entity_registry.async_remove(twin.entity_id)
    assert security_event_entity(hass, "front_door", None) == ours
    assert security_event_entity(hass, "front_door", "another-device") == ours
    assert security_event_entity(hass, "front_door", None, other.entry_id) is None


async def test_in_the_logbook(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """A fired ai_security_event shows in the real logbook with its line and entity."""
    assert await async_setup_component(hass, "logbook", {})
    add_camera(init_integration, "front_door", "Front Door")
    await hass.async_block_till_done()
    start = dt_util.utcnow()
    hass.bus.async_fire(
        "ai_security_event",
        {**EVENT, "device_id": init_integration.runtime_data.hub.device_ids["front_door"]},
    )
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)

    client = await hass_client()
    response = await client.get(f"/api/logbook/{start.isoformat()}")
    assert response.status == HTTPStatus.OK
    entries = [e for e in await response.json() if e.get("domain") == DOMAIN]
    assert len(entries) == 1
    assert entries[0]["name"] == "AI Security"
    assert entries[0]["message"] == "High risk at Front Door: person near the entrance"
    assert entries[0]["entity_id"] == "event.front_door_security_event"
