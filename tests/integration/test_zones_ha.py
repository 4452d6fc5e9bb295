"""Camera zones in a real Home Assistant: the subentry form, and zones on detections and events."""

from collections.abc import AsyncIterator
import io
from pathlib import Path

from homeassistant.components import camera
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.const import (
    DOMAIN,
)
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import Incidents, hub_entry
from tests.pipeline_helpers import jpeg, write
from tests.servers import LlmStub

# A person whose feet (box bottom centre: 160, 200 in a 320x240 frame) stand in the lower half.
PERSON = detection("person", 0.8, [140, 100, 40, 100])
LOWER_HALF = "0,0.5 1,0.5 1,1 0,1"


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(PERSON)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def entry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    """Return a loaded entry that knows the camera "Drive" (one upload made it)."""
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    incidents = Incidents(hass)
    await hass.async_add_executor_job(write, camera_root / "Drive" / "first.jpg", jpeg(1))
    await incidents.wait_ended(1)  # the test's uploads are new visits
    return entry


async def add_zone(hass: HomeAssistant, entry: MockConfigEntry, **fields: object) -> dict:  # type: ignore[type-arg]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "zone"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"camera": "drive", "name": "Driveway", "kind": "driveway", "priority": 0, **fields},
    )


@pytest.mark.parametrize(
    ("points", "field", "error"),
    [
        ("0,0 1,1", "points", "zone_too_few_points"),
        ("0,0 1,1 1,0 0,1", "points", "zone_self_intersecting"),
        ("0,0 1.5,0 1,1", "points", "zone_point_out_of_range"),
        ("0,0 nan,0 1,1", "points", "zone_not_a_number"),
        ("0,0 here 1,1", "points", "zone_bad_points_text"),
        ("0,0 0.5,0.5 1,1", "points", "zone_zero_area"),
    ],
)
async def test_bad_zones_are_refused_on_the_field(
    hass: HomeAssistant, entry: MockConfigEntry, points: str, field: str, error: str
) -> None:
    """Each bad polygon gets its own message on the points field; nothing is stored."""
    result = await add_zone(hass, entry, points=points)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    assert not entry.subentries


async def test_zone_applies_to_detections_prompts_and_events(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, llm_stub: LlmStub
) -> None:
    """A saved zone names the detections in it at once: events, prompts and bus events."""
    result = await add_zone(hass, entry, points=LOWER_HALF)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Drive: Driveway"
    await hass.async_block_till_done()
    zones = entry.runtime_data.pipeline.zones_of("drive")
    assert zones is not None
    assert [zone.name for zone in zones] == ["Driveway"]

    # A second zone of the same name on the camera is refused.
    again = await add_zone(hass, entry, points="0,0 0.5,0 0.5,0.5")
    assert again["errors"] == {"name": "zone_duplicate_name"}

    incidents = Incidents(hass)
    security_events = incidents.opened
    detection_events = async_capture_events(hass, "ai_security_detection")
    await hass.async_add_executor_job(write, camera_root / "Drive" / "second.jpg", jpeg(2))
    await incidents.wait_ended(1)
    assert detection_events[0].data["zone"] == "Driveway"
    assert security_events[0].data["zones"] == ["Driveway"]
    assert '"object":"person","confidence":80,"zone":"Driveway (driveway)"' in llm_stub.prompts[-1]

    # Changed to the upper half: the next person is in no zone.
    (subentry,) = entry.subentries.values()
    flow = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "zone"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert flow["type"] is FlowResultType.FORM
    done = await hass.config_entries.subentries.async_configure(
        flow["flow_id"],
        {
            "camera": "drive",
            "name": "Porch",
            "kind": "entry_point",
            "priority": 5,
            "points": "0,0 1,0 1,0.4 0,0.4",
        },
    )
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    zones = entry.runtime_data.pipeline.zones_of("drive")
    assert zones is not None
    assert [(zone.name, zone.priority) for zone in zones] == [("Porch", 5)]
    await hass.async_add_executor_job(write, camera_root / "Drive" / "third.jpg", jpeg(3))
    await incidents.wait_opened(2)
    assert security_events[1].data["zones"] == []


async def test_zones_camera_draws_the_polygons(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """The Zones camera entity (off by default) shows the latest picture with the zones drawn."""
    registry = er.async_get(hass)
    zones_id = registry.async_get_entity_id("camera", DOMAIN, f"{entry.entry_id}_drive_zones")
    assert zones_id is not None
    assert registry.async_get(zones_id).disabled_by is er.RegistryEntryDisabler.INTEGRATION
    registry.async_update_entity(zones_id, disabled_by=None)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    plain = await camera.async_get_image(hass, zones_id)
    result = await add_zone(hass, entry, points=LOWER_HALF)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    drawn = await camera.async_get_image(hass, zones_id)
    with (
        Image.open(io.BytesIO(plain.content)) as before,
        Image.open(io.BytesIO(drawn.content)) as after,
    ):
        assert before.size == after.size == (320, 240)
        # Inside the zone the picture is tinted; well above it, it is unchanged.
        inside = [
            abs(a - b)
            for a, b in zip(before.getpixel((160, 200)), after.getpixel((160, 200)), strict=True)
        ]
        outside = [
            abs(a - b)
            for a, b in zip(before.getpixel((160, 40)), after.getpixel((160, 40)), strict=True)
        ]
    assert sum(inside) > 20  # the zone's tint
    assert max(outside) < 12
    state = hass.states.get(zones_id)
    assert state.attributes["zones"] == [{"name": "Driveway", "kind": "driveway", "priority": 0}]
