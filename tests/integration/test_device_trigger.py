"""Device triggers of a camera: listed on its device, translated, and fired by real events.

"Person detected" works whether or not the per-detection bus event is on (it is off by default,
to keep the recorder small): it listens to the hub's per-device signal.
"""

from pathlib import Path
from typing import Any

from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.setup import async_setup_component
import probatio
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automation_capabilities,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.ai_security import device_trigger
from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.hub import SIGNAL_DEVICE_DETECTIONS
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import FAST_OPTIONS, hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub
from tests.translations import STRINGS

from .test_blueprints import add_front_door
from .test_pipeline_ha import detector_server  # noqa: F401


@pytest.fixture
def entry(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> MockConfigEntry:
    """Return a hub with the per-detection bus event off, as by default."""
    return hub_entry(
        hass,
        camera_root,
        detector_server.url,
        llm_stub.url,
        options={**FAST_OPTIONS, "detection_events": False},
    )


def camera_device(hass: HomeAssistant, config_entry: MockConfigEntry) -> str:
    """Return the device id of camera Front Door (a device of the registry)."""
    device_id: str = config_entry.runtime_data.hub.device_ids["front_door"]
    assert dr.async_get(hass).async_get(device_id) is not None
    return device_id


def trigger(device_id: str, trigger_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "platform": "device",
        "domain": DOMAIN,
        "device_id": device_id,
        "type": trigger_type,
        **extra,
    }


def test_every_trigger_type_and_field_is_translated() -> None:
    texts = STRINGS["device_automation"]
    assert set(texts["trigger_type"]) == set(device_trigger.TRIGGER_TYPES)
    assert set(texts["extra_fields"]) == {device_trigger.CONF_LEVEL}


def test_a_security_event_trigger_needs_a_known_level() -> None:
    base = trigger("abc", "security_event")
    with pytest.raises(probatio.Invalid):
        device_trigger.TRIGGER_SCHEMA(base)
    with pytest.raises(probatio.Invalid):
        device_trigger.TRIGGER_SCHEMA({**base, "level": "severe"})
    with pytest.raises(probatio.Invalid):
        device_trigger.TRIGGER_SCHEMA(trigger("abc", "motion"))
    assert device_trigger.TRIGGER_SCHEMA({**base, "level": "high"})["level"] == "high"
    assert "level" not in device_trigger.TRIGGER_SCHEMA(trigger("abc", "any_event"))


async def test_triggers_are_listed_on_camera_devices_only(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """A camera has the three triggers, the level a select; the hub's device has none."""
    await add_front_door(hass, entry, camera_root, detector_server)
    device_id = camera_device(hass, entry)
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
    # The camera's entities add their own (the activity sensor's motion, the event's state).
    ours = [found for found in triggers if found["domain"] == DOMAIN]
    assert sorted(ours, key=lambda t: t["type"]) == [
        {**trigger(device_id, "any_event"), "metadata": {}},
        {**trigger(device_id, "person_detected"), "metadata": {}},
        {**trigger(device_id, "security_event"), "metadata": {}},
    ]
    hub_device = entry.runtime_data.hub.hub_device_id
    assert hub_device is not None
    hub_triggers = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, hub_device
    )
    assert [t for t in hub_triggers if t["domain"] == DOMAIN] == []

    capabilities = await async_get_device_automation_capabilities(
        hass, DeviceAutomationType.TRIGGER, trigger(device_id, "security_event")
    )
    (level,) = capabilities["extra_fields"]
    assert level["name"] == "level"
    assert level["required"] is True
    assert level["default"] == "high"
    assert [option[0] for option in level["options"]] == ["low", "medium", "high", "critical"]
    for trigger_type in ("person_detected", "any_event"):
        assert await async_get_device_automation_capabilities(
            hass, DeviceAutomationType.TRIGGER, trigger(device_id, trigger_type)
        ) == {"extra_fields": []}
    assert await device_trigger.async_get_triggers(hass, "no-such-device") == []


async def set_up_automations(hass: HomeAssistant, device_id: str) -> list[ServiceCall]:
    """Make one automation per trigger, each calling test.fired with its name."""
    calls = async_mock_service(hass, "test", "fired")
    cases = {
        "high_or_above": trigger(device_id, "security_event", level="high"),
        "critical": trigger(device_id, "security_event", level="critical"),
        "person": trigger(device_id, "person_detected"),
        "any": trigger(device_id, "any_event"),
    }
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "alias": name,
                    "triggers": [config],
                    "actions": [
                        {
                            "action": "test.fired",
                            "data": {
                                "name": name,
                                "platform": "{{ trigger.platform }}",
                                "event_type": "{{ trigger.event.event_type }}",
                                "level": "{{ trigger.event.data.risk_level }}",
                                "camera": "{{ trigger.event.data.camera_id }}",
                                "entry_id": "{{ trigger.event.data.entry_id }}",
                            },
                        }
                    ],
                }
                for name, config in cases.items()
            ]
        },
    )
    await hass.async_block_till_done()
    return calls


async def test_a_real_upload_fires_the_cameras_triggers(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """A person judged high risk fires "person", "any" and, at the rise, "high or above".

    The per-detection bus event is off: none is fired, and "person" fires all the same, with the
    trigger data an event trigger on it would give.
    """
    await add_front_door(hass, entry, camera_root, detector_server)
    calls = await set_up_automations(hass, camera_device(hass, entry))
    events = async_capture_events(hass, "ai_security_event")
    on_the_bus = async_capture_events(hass, "ai_security_detection")
    updates = async_capture_events(hass, "ai_security_event_updated")
    detector_server.answer(Reply(body=detections(detection("person", 0.8, [10, 20, 30, 60]))))
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "a.jpg", jpeg(2))
    await wait_until(lambda: len(events) == 1, seconds=20, what="the incident")
    # Opened Medium by the heuristic, High once the LLM has judged it.
    await wait_until(lambda: bool(updates), seconds=20, what="the LLM's verdict")
    await hass.async_block_till_done()
    assert events[0].data["risk_level"] == "medium"
    assert updates[0].data["risk_level"] == "high"
    assert updates[0].data["level_rose"] is True
    assert events[0].data["entry_id"] == entry.entry_id
    fired = sorted((call.data["name"], call.data["event_type"]) for call in calls)
    assert fired == [
        ("any", "ai_security_event"),
        ("high_or_above", "ai_security_event_updated"),
        ("person", "ai_security_detection"),
    ]
    assert {call.data["platform"] for call in calls} == {"device"}
    (person,) = [call for call in calls if call.data["name"] == "person"]
    assert person.data["camera"] == "front_door"
    assert person.data["entry_id"] == entry.entry_id
    assert on_the_bus == []


async def test_detection_events_on_the_bus_when_turned_on(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> None:
    """With the option on, each detection is also a bus event; "person" still fires once."""
    entry = hub_entry(
        hass,
        camera_root,
        detector_server.url,
        llm_stub.url,
        options={**FAST_OPTIONS, "detection_events": True},
    )
    await add_front_door(hass, entry, camera_root, detector_server)
    calls = await set_up_automations(hass, camera_device(hass, entry))
    on_the_bus = async_capture_events(hass, "ai_security_detection")
    events = async_capture_events(hass, "ai_security_event")
    detector_server.answer(Reply(body=detections(detection("person", 0.8, [10, 20, 30, 60]))))
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "b.jpg", jpeg(3))
    await wait_until(lambda: len(events) == 1, seconds=20, what="the event")
    await hass.async_block_till_done()
    (found,) = on_the_bus
    assert found.data["entry_id"] == entry.entry_id
    assert (found.data["camera_id"], found.data["class"]) == ("front_door", "person")
    assert found.data["device_id"] == camera_device(hass, entry)
    assert [call.data["name"] for call in calls if call.data["name"] == "person"] == ["person"]


async def test_levels_are_matched_at_or_above_and_other_devices_ignored(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """Low < medium < high < critical; another camera's events and other objects do nothing."""
    await add_front_door(hass, entry, camera_root, detector_server)
    device_id = camera_device(hass, entry)
    calls = await set_up_automations(hass, device_id)

    for level in ("low", "medium", "high", "critical"):
        hass.bus.async_fire(
            "ai_security_event", {"device_id": device_id, "risk_level": level, "camera_id": "x"}
        )
    hass.bus.async_fire("ai_security_event", {"device_id": "other", "risk_level": "critical"})
    # Detections reach the trigger through the hub's signal for the camera's device only.
    signal = SIGNAL_DEVICE_DETECTIONS.format
    async_dispatcher_send(hass, signal(device_id), [{"device_id": device_id, "class": "car"}])
    async_dispatcher_send(hass, signal("other"), [{"device_id": "other", "class": "person"}])
    async_dispatcher_send(
        hass, signal(device_id), [{"device_id": device_id, "class": "person", "camera_id": "x"}]
    )
    await hass.async_block_till_done()
    fired = sorted((call.data["name"], call.data["level"]) for call in calls)
    assert fired == [
        ("any", "critical"),
        ("any", "high"),
        ("any", "low"),
        ("any", "medium"),
        ("critical", "critical"),
        ("high_or_above", "critical"),
        ("high_or_above", "high"),
        ("person", ""),
    ]
    (person,) = [call for call in calls if call.data["name"] == "person"]
    assert person.data["event_type"] == "ai_security_detection"
    assert person.data["camera"] == "x"

    # Turning the automations off detaches every listener, one per level included.
    await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)
    hass.bus.async_fire("ai_security_event", {"device_id": device_id, "risk_level": "critical"})
    async_dispatcher_send(hass, signal(device_id), [{"device_id": device_id, "class": "person"}])
    await hass.async_block_till_done()
    assert len(calls) == len(fired)
