"""The pipeline inside a real Home Assistant: uploads become devices and bus events."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
import threading

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.const import (
    DOMAIN,
)
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.8, [10, 20, 30, 60])))
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def entry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    return hub_entry(hass, camera_root, detector_server.url, llm_stub.url)


async def test_upload_becomes_device_and_events(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """An image in a new camera folder makes the camera's device, a detection and an incident.

    The incident is announced at once with the heuristic's verdict, and updated (the same event,
    its own picture) with the LLM's when it closes.
    """
    security_events = async_capture_events(hass, "ai_security_event")
    updates = async_capture_events(hass, "ai_security_event_updated")
    detection_events = async_capture_events(hass, "ai_security_detection")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    path = await hass.async_add_executor_job(
        write, camera_root / "Caméra Jardin" / "2026-11-26" / "snap.jpg", jpeg(1)
    )
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="ai_security_event")

    registry = dr.async_get(hass)
    hub = registry.async_get_device_by_identifier((DOMAIN, entry.entry_id), entry.entry_id)
    camera = registry.async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_camera_jardin"), entry.entry_id
    )
    assert hub is not None
    assert camera is not None
    assert (camera.name, camera.model, camera.via_device_id) == (
        "Caméra Jardin",
        "Upload folder",
        hub.id,
    )

    (found,) = detection_events
    assert found.data == {
        "entry_id": entry.entry_id,
        "camera_id": "camera_jardin",
        "camera_name": "Caméra Jardin",
        "device_id": camera.id,
        "class": "person",
        "confidence": 0.8,
        "bbox": [10.0, 20.0, 30.0, 60.0],
        "file": str(path),
        "frame_time": None,
        "zone": None,
        "alerts_paused": False,
    }
    (event,) = security_events
    opened = dict(event.data)
    assert (opened["source"], opened["ongoing"], opened["object_types"]) == (
        "heuristic",
        True,
        ["person"],
    )
    await wait_until(
        lambda: any(not update.data["ongoing"] for update in updates),
        seconds=20,
        what="the incident to close",
    )
    (update,) = updates
    data = dict(update.data)
    event_id = data.pop("event_id")
    assert event_id == opened["event_id"]
    assert len(event_id) == 32
    # The event's own annotated picture, signed for the phone (test_event_pictures.py).
    assert f"/api/{DOMAIN}/media/{entry.entry_id}/camera_jardin/" in data["image_url"]
    assert event_id in data.pop("image_url")
    started_at, ended_at = data.pop("started_at"), data.pop("ended_at")
    assert started_at == opened["started_at"]
    assert started_at.endswith("+00:00")
    assert ended_at >= started_at
    assert data == {
        "entry_id": entry.entry_id,
        "camera_id": "camera_jardin",
        "camera_name": "Caméra Jardin",
        "device_id": camera.id,
        "risk_score": 72,
        "risk_level": "high",
        "summary": "Person at the door at night",
        "reasoning": "One person close to the entrance late at night.",
        "object_types": ["person"],
        "zones": [],
        "detection_count": 1,
        "is_fast_path": False,
        "source": "llm",
        "ongoing": False,
        # Not moved by reviews (there are none).
        "raw_score": None,
        "calibration": "",
        # The stub answers the four keys of old: the further fields are there, and empty.
        "title": "",
        "observations": "",
        "confidence": None,
        "other_concerns": [],
        "unverified_objects": [],
        "contradiction": "",
        "alerts_paused": False,
        "clip_url": None,  # one still: no clip
        "changed": ["verdict", "ended"],
        "level_rose": opened["risk_level"] != "high",
        "previous_risk_score": opened["risk_score"],
        "previous_risk_level": opened["risk_level"],
        "previous_summary": opened["summary"],
        "previous_source": "heuristic",
    }
    assert len(security_events) == 1


async def test_unload_and_stop_leave_nothing_running(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """Unloading joins the watcher and database threads; Home Assistant's stop does too."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    names = {thread.name for thread in threading.enumerate()}
    assert any(name.startswith("ai_security_db") for name in names)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    names = {thread.name for thread in threading.enumerate()}
    assert not any(name.startswith("ai_security") for name in names)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    names = {thread.name for thread in threading.enumerate()}
    assert not any(name.startswith("ai_security") for name in names)
    # Unloading after the stop is harmless.
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_uploads_survive_a_restart_of_the_integration(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, detector_server: DetectorServer
) -> None:
    """Files that land while the integration is unloaded are processed after it is back."""
    security_events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(2))
    await asyncio.sleep(0.3)
    assert detector_server.count == 0
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="the missed upload")
    assert detector_server.count == 1


async def test_heuristic_event_then_rescored_event(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, llm_stub: LlmStub
) -> None:
    """While the LLM is away the incident is scored by rule; when it is back, a re-score follows."""
    security_events = async_capture_events(hass, "ai_security_event")
    updates = async_capture_events(hass, "ai_security_event_updated")
    rescored = [update for update in updates if update.data["source"] == "llm"]
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await llm_stub.stop()
    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(3))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="the heuristic event")
    assert security_events[0].data["source"] == "heuristic"
    await wait_until(lambda: bool(updates), seconds=20, what="the incident to end")
    await llm_stub.start()
    await wait_until(
        lambda: any(update.data["source"] == "llm" for update in updates),
        seconds=60,
        what="the re-scored event",
    )
    rescored = [update for update in updates if update.data["source"] == "llm"]
    (closed,) = [update for update in updates if "ended" in update.data["changed"]]
    assert closed.data["source"] == "heuristic"
    (again,) = rescored
    data = again.data
    assert data["changed"] == ["verdict"]
    assert data["event_id"] == security_events[0].data["event_id"]
    assert (data["risk_score"], data["source"]) == (72, "llm")
    assert data["previous_risk_score"] == security_events[0].data["risk_score"]
    assert (data["previous_risk_level"], data["previous_source"]) == (
        security_events[0].data["risk_level"],
        "heuristic",
    )
    assert len(security_events) == 1


@pytest.mark.parametrize("state_during_start", ["stopping", "stopped"])
async def test_stop_during_setup_leaves_nothing_running(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    state_during_start: str,
) -> None:
    """A setup racing Home Assistant's shutdown stops its pipeline again instead of leaking it."""
    from homeassistant.core import CoreState  # noqa: PLC0415

    from custom_components.ai_security.core.pipeline import Pipeline  # noqa: PLC0415

    start = Pipeline.start

    async def start_then_shutdown_begins(self: Pipeline) -> None:
        await start(self)
        hass.set_state(CoreState[state_during_start])

    monkeypatch.setattr(Pipeline, "start", start_then_shutdown_begins)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hass.set_state(CoreState.running)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == "Home Assistant is stopping"
    assert not any(t.name.startswith("ai_security") for t in threading.enumerate())
