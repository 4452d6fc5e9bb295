"""The integration end to end against the real reference detection server (hog backend).

Everything but the LLM is real here: Home Assistant, the folder watcher, the pipeline, the
database, and the server process a user would run without a GPU. A photo of a person dropped
into a camera folder must come back as a person detection in the photo's place, then as an
event; an upload the server refuses must be given up on (dead letter), not retried forever,
and must not stop the next upload.
"""

from collections.abc import Iterator
from pathlib import Path

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import wait_until, write
from tests.reference_detector import (
    ReferenceDetector,
    astronaut_scene,
    encode,
    iou,
    reference_detector,
)
from tests.servers import LlmStub

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceDetector]:
    """Run the reference server as a user without a GPU runs it."""
    yield from reference_detector(tmp_path_factory.mktemp("hog-e2e"), "--backend", "hog")


@pytest.fixture
def entry(
    hass: HomeAssistant, camera_root: Path, hog_server: ReferenceDetector, llm_stub: LlmStub
) -> MockConfigEntry:
    return hub_entry(hass, camera_root, hog_server.url, llm_stub.url)


async def test_photo_of_a_person_becomes_a_detection_and_an_event(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, hog_server: ReferenceDetector
) -> None:
    """The astronaut scene in a camera folder: a person where she is, then a security event."""
    detections = async_capture_events(hass, "ai_security_detection")
    security_events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    scene, truth = astronaut_scene()
    path = await hass.async_add_executor_job(
        write, camera_root / "Front Door" / "snap.jpg", encode(scene)
    )
    await wait_until(lambda: len(security_events) == 1, seconds=30, what="ai_security_event")

    people = [event.data for event in detections if event.data["class"] == "person"]
    assert people, [event.data for event in detections]
    best = max(people, key=lambda data: iou(data["bbox"], truth))
    assert iou(best["bbox"], truth) > 0.5
    assert best["file"] == str(path)
    assert best["camera_id"] == "front_door"
    assert best["confidence"] >= 0.5
    (event,) = security_events
    assert event.data["camera_id"] == "front_door"
    assert "person" in event.data["object_types"]
    assert event.data["detection_count"] == len(detections)


async def test_a_refused_upload_does_not_stop_the_next(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """A .jpg that is not an image is refused and given up on; the next photo still counts."""
    security_events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    await hass.async_add_executor_job(
        write, camera_root / "Garage" / "broken.jpg", b"\xff\xd8 not really a jpeg"
    )
    scene, _truth = astronaut_scene(at=(200, 300))
    await hass.async_add_executor_job(write, camera_root / "Garage" / "good.jpg", encode(scene))
    await wait_until(lambda: len(security_events) == 1, seconds=30, what="ai_security_event")
    assert security_events[0].data["camera_id"] == "garage"
    assert "person" in security_events[0].data["object_types"]
