"""Promises kept inside a real Home Assistant: no history replayed, odd detectors reported."""

import asyncio
from collections.abc import AsyncIterator
import os
from pathlib import Path

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.json import json_dumps
import pytest
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.detector import UNIT_BOXES
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub

PERSON = detection("person", 0.8, [100, 60, 50, 120])


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(PERSON)))
    await server.start()
    yield server
    await server.stop()


async def test_a_folder_set_up_again_does_not_replay_its_history(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> None:
    """Removing a hub and adding its folder again fires nothing for the old snapshots.

    New uploads still fire, and the admin action takes the old ones in on purpose.
    """
    first = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(first.entry_id)
    await hass.async_block_till_done()
    for i in range(3):
        await hass.async_add_executor_job(write, camera_root / "Front" / f"{i}.jpg", jpeg(i))
    await wait_until(lambda: detector_server.count == 3, 20, "three uploads detected")
    await wait_until(lambda: bool(events), 20, "the first hub's events")
    database = Path(hass.config.path(DOMAIN, f"{first.entry_id}.db"))
    assert await hass.async_add_executor_job(database.exists)
    assert await hass.config_entries.async_remove(first.entry_id)
    await hass.async_block_till_done()
    # Its own database goes with it: the folder set up again starts a new history.
    assert not await hass.async_add_executor_job(database.exists)

    events.clear()
    second = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    assert await hass.config_entries.async_setup(second.entry_id)
    await hass.async_block_till_done()
    assert second.state is ConfigEntryState.LOADED
    await asyncio.sleep(2)
    assert detector_server.count == 3
    assert events == []

    await hass.async_add_executor_job(write, camera_root / "Front" / "new.jpg", jpeg(10))
    await wait_until(lambda: detector_server.count == 4, 20, "the new upload detected")
    await wait_until(lambda: bool(events), 20, "an event for the new upload")

    response = await hass.services.async_call(
        DOMAIN,
        "process_old_uploads",
        {"config_entry_id": second.entry_id, "camera": "front"},
        blocking=True,
        return_response=True,
    )
    assert response == {"queued": 3}
    await wait_until(lambda: detector_server.count == 7, 20, "the old uploads, on request")
    assert await hass.config_entries.async_unload(second.entry_id)


async def test_names_that_are_not_utf8_reach_home_assistant_as_text(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> None:
    """A file name with bytes that are not UTF-8 is processed, and its events and states encode.

    Home Assistant's JSON encoder refuses Python's lone surrogates: the name is shown with
    U+FFFD instead, in the detection event and the camera's sensor.
    """
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    detections_seen = async_capture_events(hass, "ai_security_detection")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    folder = camera_root / "Front"
    await hass.async_add_executor_job(folder.mkdir)
    raw = os.path.join(os.fsencode(folder), b"caf\xe9\nsnap.jpg")
    await hass.async_add_executor_job(Path(os.fsdecode(raw)).write_bytes, jpeg(3))
    await wait_until(lambda: bool(detections_seen), 20, "the detection")
    file_shown = detections_seen[0].data["file"]
    assert file_shown.endswith("caf\ufffd\\nsnap.jpg")
    json_dumps(detections_seen[0].data)  # raises on a lone surrogate
    for state in hass.states.async_all():
        json_dumps(state.as_dict())
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_detector_answering_in_fractions_raises_a_repair_naming_it(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> None:
    """Boxes in 0-1 fractions: nothing is detected, and Repairs names the server and the fault."""
    detector_server.answer(Reply(body=detections(detection("person", 0.9, [0.1, 0.2, 0.3, 0.5]))))
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url)
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Front" / "a.jpg", jpeg(1, 640, 480))
    await wait_until(lambda: detector_server.count >= 1, 20, "the upload sent")
    pipeline = entry.runtime_data.pipeline
    await wait_until(lambda: bool(pipeline.detector.implausible), 10, "the reply judged")
    coordinator = entry.runtime_data.coordinator
    await coordinator.async_refresh()
    issue_id = f"detector_replies_implausible_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["endpoints"] == detector_server.url
    assert issue.translation_placeholders["problem"] == UNIT_BOXES
    assert events == []

    detector_server.answer(Reply(body=detections(PERSON)))
    # The upload that waited is detected once the boxes fit: no new upload needed.
    await wait_until(lambda: bool(events), 40, "an event once the boxes fit")
    await coordinator.async_refresh()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert await hass.config_entries.async_unload(entry.entry_id)
