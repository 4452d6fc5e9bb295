"""Each event is announced with its own picture: drawn first, its URL in the bus event."""

from collections.abc import AsyncIterator
import io
from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ai_security.const import DOMAIN
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import FAST_OPTIONS, hub_entry
from tests.pipeline_helpers import wait_until, write
from tests.servers import LlmStub

COLORS = [(((i * 53) % 200) + 40, ((i * 97) % 200) + 40, ((i * 151) % 200) + 40) for i in range(20)]
"""Twenty clearly different colours, one per upload."""


def picture(color: tuple[int, int, int]) -> bytes:
    """Return a 320x240 JPEG of one colour (the detector finds a person at its centre)."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def corner_color(jpeg: bytes) -> tuple[int, int, int]:
    """Return the colour of a picture's top-left area, away from the drawn box and label."""
    with Image.open(io.BytesIO(jpeg)) as image:
        pixel = image.convert("RGB").getpixel((10, image.height - 10))
    assert isinstance(pixel, tuple)
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= 12 for x, y in zip(a, b, strict=True))


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.8, [120, 60, 80, 150])))
    )
    await server.start()
    yield server
    await server.stop()


async def test_every_event_is_announced_with_its_own_picture(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """Twenty incidents in a row, each of a differently coloured upload.

    When ai_security_event fires, the camera's "Last event" picture is already this incident's,
    and its image_url loads (without a token) this incident's annotated picture, however many
    incidents followed.
    """
    assert await async_setup_component(hass, "http", {})  # served: URLs are signed
    options: dict[str, Any] = {**FAST_OPTIONS, "fast_path_objects": []}
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url, options=options)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hub = entry.runtime_data.hub
    at_trigger: list[tuple[dict[str, Any], str | None]] = []

    @callback
    def on_event(event: Event) -> None:
        state = hub.cameras[event.data["camera_id"]]
        at_trigger.append((dict(event.data), state.event_image_event_id))

    closed: list[str] = []

    @callback
    def on_update(event: Event) -> None:
        if "ended" in event.data["changed"] and not event.data["ongoing"]:
            closed.append(event.data["event_id"])

    hass.bus.async_listen(f"{DOMAIN}_event", on_event)
    hass.bus.async_listen(f"{DOMAIN}_event_updated", on_update)
    for index, color in enumerate(COLORS):
        await hass.async_add_executor_job(
            write, camera_root / "Front" / f"{index:02}.jpg", picture(color)
        )
        await wait_until(lambda n=index: len(at_trigger) == n + 1, 20, f"incident {index}")
        # The visit ends (idle); the next upload is the next visit.
        await wait_until(lambda n=index: len(closed) == n + 1, 20, f"incident {index} to end")

    http = await hass_client_no_auth()
    for index, (data, shown_event) in enumerate(at_trigger):
        assert shown_event == data["event_id"], f"event {index} announced before its picture"
        image_url = data["image_url"]
        assert image_url is not None
        assert data["event_id"] in image_url
        loaded = await http.get(image_url)
        assert loaded.status == 200
        assert close(corner_color(await loaded.read()), COLORS[index]), index
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_clip_made_later_is_announced_as_an_update(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """Two uploads in one incident make a clip when it ends: ai_security_event_updated says so."""
    assert await async_setup_component(hass, "http", {})  # served: URLs are signed
    options: dict[str, Any] = {**FAST_OPTIONS, "fast_path_objects": [], "batch_idle_timeout": 1}
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url, options=options)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    events: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    hass.bus.async_listen(f"{DOMAIN}_event", lambda event: events.append(dict(event.data)))
    hass.bus.async_listen(f"{DOMAIN}_event_updated", lambda event: updates.append(dict(event.data)))
    for index in range(2):
        await hass.async_add_executor_job(
            write, camera_root / "Front" / f"{index}.jpg", picture(COLORS[index])
        )
    await wait_until(
        lambda: any("clip" in update["changed"] for update in updates), 30, "the clip's update"
    )
    (event,) = events
    assert event["clip_url"] is None
    assert event["image_url"] is not None
    (update,) = [update for update in updates if "clip" in update["changed"]]
    assert update["event_id"] == event["event_id"]
    # The phone's picture stays: the same file (the signature's time differs).
    assert update["image_url"].split("?")[0] == event["image_url"].split("?")[0]
    assert update["changed"] == ["clip"]
    assert update["clip_url"] is not None
    assert event["event_id"] in update["clip_url"]
    assert await hass.config_entries.async_unload(entry.entry_id)
