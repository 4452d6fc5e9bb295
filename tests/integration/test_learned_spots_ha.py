"""Learned spots in a real Home Assistant: two false alarms at one place silence the third.

A person-shaped thing (a statue) is detected at the same place in every upload. After two of
its incidents are reviewed as false alarms, the next detection there opens no incident: it is
counted on the camera's "Learned false alarms today" sensor, listed by learned_spots and drawn
on the Zones picture; a person beside it still opens an incident; forgetting starts over.
"""

from collections.abc import AsyncIterator
import io
from pathlib import Path
from typing import Any

from homeassistant.components import camera
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.const import DOMAIN
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub

from .test_entities import entity_id
from .test_services import call, search, set_up, upload_event

STATUE = detection("person", 0.81, [200, 60, 50, 120])
BESIDE = detection("person", 0.9, [120, 70, 45, 115])
"""A person standing next to the statue: their boxes barely overlap."""


@pytest.fixture
async def statue(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(STATUE)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def entry(
    hass: HomeAssistant, camera_root: Path, statue: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    return hub_entry(hass, camera_root, statue.url, llm_stub.url)


async def dismiss(hass: HomeAssistant, entry: MockConfigEntry, event: dict[str, Any]) -> None:
    await call(
        hass,
        "review_event",
        {"config_entry_id": entry.entry_id, "event_id": event["event_id"], "dismissed": True},
    )


async def spots(hass: HomeAssistant, entry: MockConfigEntry, **fields: Any) -> list[Any]:
    response = await call(hass, "learned_spots", {"config_entry_id": entry.entry_id, **fields})
    assert isinstance(response, dict)
    return list(response["spots"])


async def test_two_false_alarms_at_one_place_silence_the_third(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    statue: DetectorServer,
) -> None:
    """Learned, suppressed and counted; a person beside it still alerts; forgotten on request."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    first = await upload_event(hass, camera_root, "Garden/1.jpg", 1, events)
    await dismiss(hass, entry, first)
    assert await spots(hass, entry) == []  # one false alarm is not a spot
    second = await upload_event(hass, camera_root, "Garden/2.jpg", 2, events)
    await dismiss(hass, entry, second)
    (spot,) = await spots(hass, entry)
    assert (spot["camera"], spot["label"], spot["false_alarms"]) == ("garden", "person", 2)
    box = spot["box"]
    assert (box["x"], box["y"], box["w"], box["h"]) == (0.625, 0.25, 0.1562, 0.5)

    # The statue again: stored and counted, no incident.
    suppressed = entity_id(hass, entry, "sensor", "garden_suppressed_today")
    detections_today = entity_id(hass, entry, "sensor", "garden_detections_today")
    before = hass.states.get(detections_today).state
    await hass.async_add_executor_job(write, camera_root / "Garden" / "3.jpg", jpeg(3))
    await wait_until(
        lambda: hass.states.get(suppressed).state == "1", seconds=20, what="the suppression"
    )
    assert len(events) == 2
    assert hass.states.get(detections_today).state == before  # not counted as a detection
    # Visible in search, beside the events: what was kept out, where and when.
    found = await search(hass, entry)
    assert found["total"] == 2
    assert found["suppressed"]["total"] == 1
    (hidden,) = found["suppressed"]["latest"]
    assert (hidden["camera"], hidden["label"], hidden["confidence"]) == ("garden", "person", 0.81)
    assert hidden["box"] == box
    later = await search(hass, entry, start="2099-01-01T00:00:00+00:00")
    assert later["suppressed"] == {"total": 0, "latest": []}

    # Drawn on the Zones picture, and listed in its attributes.
    registry = er.async_get(hass)
    zones_id = registry.async_get_entity_id("camera", DOMAIN, f"{entry.entry_id}_garden_zones")
    assert zones_id is not None
    registry.async_update_entity(zones_id, disabled_by=None)
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(zones_id).attributes["learned_spots"] == [spot]
    # The reload restarted the pipeline: the spot is learned again from the stored reviews,
    # and the count of the day goes on from the database.
    await hass.async_add_executor_job(write, camera_root / "Garden" / "3b.jpg", jpeg(33))
    await wait_until(
        lambda: hass.states.get(suppressed).state == "2", seconds=20, what="a suppression"
    )
    assert len(events) == 2
    picture = await camera.async_get_image(hass, zones_id)
    with Image.open(io.BytesIO(picture.content)) as drawn:
        rgb = drawn.convert("RGB")
        # The dashed white box's left edge: about half of the column is near white (the
        # random upload under it almost never is).
        edge = [rgb.getpixel((200, y)) for y in range(64, 176)]
        white = sum(1 for pixel in edge if min(pixel) > 190)  # type: ignore[type-var,arg-type]
        assert white > len(edge) // 4, white

    # A person beside the statue is judged as ever.
    statue.default = Reply(body=detections(BESIDE))
    beside = await upload_event(hass, camera_root, "Garden/4.jpg", 4, events)
    assert beside["object_types"] == ["person"]

    # Forgotten: the statue opens incidents again until it is taught anew.
    assert await spots(hass, entry, camera="garden", forget=True) == []
    statue.default = Reply(body=detections(STATUE))
    again = await upload_event(hass, camera_root, "Garden/5.jpg", 5, events)
    assert again["event_id"] not in {first["event_id"], second["event_id"]}
