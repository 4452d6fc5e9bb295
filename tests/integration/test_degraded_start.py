"""A model server down at start never stops the integration: it degrades, then catches up."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
import logging
from pathlib import Path

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.coordinator import OUTAGE_INTERVAL
from custom_components.ai_security.repairs import RepairTracker
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub

PERSON = detection("person", 0.8, [10, 20, 30, 60])


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(PERSON)))
    await server.start()
    yield server
    await server.stop()


async def test_every_detector_down_at_start_queues_and_catches_up(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The entry loads and watches; uploads wait durably and go out once a detector is back."""
    await detector_server.stop()
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    events = async_capture_events(hass, "ai_security_event")
    with caplog.at_level(logging.WARNING):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert any(
        f"detector server at {detector_server.url} is not reachable" in r.getMessage()
        for r in caplog.records
    )
    coordinator = entry.runtime_data.coordinator
    assert coordinator.update_interval == OUTAGE_INTERVAL

    await hass.async_add_executor_job(write, camera_root / "Front" / "a.jpg", jpeg(1))
    pipeline = entry.runtime_data.pipeline
    await wait_until(lambda: "front" in pipeline.cameras, 10, "the upload registered")
    await asyncio.sleep(2)
    assert events == []
    queued = await pipeline.queue_depths()
    assert queued["detect_queued"] + queued["detect_running"] == 1
    assert queued["detect_dead"] == 0

    await detector_server.start()
    await wait_until(lambda: len(events) == 1, 20, "the queued upload judged")
    assert detector_server.count >= 1
    await wait_until(
        lambda: coordinator.update_interval == timedelta(seconds=15), 20, "the usual interval"
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_llm_down_at_start_scores_with_the_heuristic_then_rescored(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """Events come at once from the heuristic; the LLM judges them again once it answers."""
    await llm_stub.stop()
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    events = async_capture_events(hass, "ai_security_event")
    updates = async_capture_events(hass, "ai_security_event_updated")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    await hass.async_add_executor_job(write, camera_root / "Front" / "a.jpg", jpeg(1))
    await wait_until(lambda: bool(events), 20, "a heuristic event")
    assert {event.data["source"] for event in events} == {"heuristic"}

    # Unreachable for five minutes: the Repairs issue, as at runtime (a tracker of the entry
    # given the coordinator's figures now and six minutes on, as the hub's own is on refreshes).
    coordinator = entry.runtime_data.coordinator
    repairs = RepairTracker(hass, entry)
    now = dt_util.utcnow()
    for later in (timedelta(0), timedelta(minutes=6)):
        repairs.update(coordinator.data, camera_root_ok=True, now=now + later)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"llm_unreachable_{entry.entry_id}")
    assert issue is not None

    await llm_stub.start()
    await wait_until(
        lambda: any(update.data["source"] == "llm" for update in updates),
        30,
        "the event judged again by the LLM",
    )
    assert len(events) == 1  # judged again: the same incident, not a new one
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_reload_with_servers_down_keeps_watching(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """A reload (options saved) while both servers are down does not leave the entry retrying."""
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await detector_server.stop()
    await llm_stub.stop()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await hass.async_add_executor_job(write, camera_root / "Back" / "b.jpg", jpeg(2))
    pipeline = entry.runtime_data.pipeline
    await wait_until(lambda: "back" in pipeline.cameras, 10, "the upload registered")
    assert await hass.config_entries.async_unload(entry.entry_id)
