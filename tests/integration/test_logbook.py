"""The logbook: one line per incident, on the camera's Security event entity.

The event entity's own state change is the line ("Security event -> High risk", under the
camera). The integration describes no bus event of its own: a described ai_security_event on
top of it was a second line for the same visit.
"""

from http import HTTPStatus
from pathlib import Path
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ai_security.const import DOMAIN
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import Incidents, hub_entry
from tests.pipeline_helpers import write
from tests.servers import LlmStub

from .test_entities import entity_id
from .test_event_pictures import COLORS, picture


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_db_url: str, enable_custom_integrations: None) -> None:
    """Enable custom integrations, after preparing the recorder's database as it requires."""


async def test_one_line_per_incident(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    camera_root: Path,
    llm_stub: LlmStub,
    socket_enabled: None,
) -> None:
    """Two visits, each judged again by the LLM: two lines, one per incident, no more."""
    assert await async_setup_component(hass, "logbook", {})
    detector = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.8, [120, 60, 80, 150])))
    )
    await detector.start()
    try:
        entry = hub_entry(hass, camera_root, detector.url, llm_stub.url)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        incidents = Incidents(hass)
        start = dt_util.utcnow()
        for visit in range(2):
            for shot in range(2):  # two uploads of one visit
                await hass.async_add_executor_job(
                    write,
                    camera_root / "Front Door" / f"{visit}-{shot}.jpg",
                    picture(COLORS[visit * 2 + shot]),
                )
            await incidents.wait_ended(visit + 1)
        await hass.async_block_till_done()
        assert len(incidents.opened) == 2
        assert len(incidents.updates) >= 2  # each judged again: no line for that
        await async_wait_recording_done(hass)

        client = await hass_client()
        response = await client.get(f"/api/logbook/{start.isoformat()}")
        assert response.status == HTTPStatus.OK
        entries: list[dict[str, Any]] = await response.json()
        security = entity_id(hass, entry, "event", "front_door_security_event")
        lines = [e for e in entries if e.get("entity_id") == security]
        # The LLM's High after the heuristic's Medium is a rise: the entity fires once more
        # for it. Without a rise, a visit is one line.
        rises = sum(1 for update in incidents.updates if update.data["level_rose"])
        assert len(lines) == 2 + rises, lines
        assert [e for e in entries if e.get("domain") == DOMAIN] == []
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await detector.stop()
