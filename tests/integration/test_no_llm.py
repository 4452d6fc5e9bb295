"""A hub without an LLM server: every event is scored by the heuristic, and nothing waits for one.

Users without a GPU for an LLM (and the demo without a model file) leave the LLM URL empty. The
hub must then judge every window with the heuristic at once, offer no LLM entities that would
stay unavailable forever, and queue no re-scoring for an LLM that will never come.
"""

from datetime import timedelta
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from sqlalchemy import select

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.monitor import ServiceKind
from custom_components.ai_security.core.storage import JobRow
from custom_components.ai_security.repairs import RepairTracker
from tests.detector_server import DetectorServer
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write

from .test_pipeline_ha import detector_server  # noqa: F401


async def test_events_are_scored_by_the_heuristic_without_llm_entities(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """An upload with a person becomes a heuristic event; no LLM sensor, probe or re-score job."""
    entry: MockConfigEntry = hub_entry(hass, camera_root, detector_server.url, "")
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(3))
    await wait_until(lambda: len(events) == 1, seconds=20, what="ai_security_event")
    assert events[0].data["source"] == "heuristic"
    assert events[0].data["object_types"] == ["person"]

    pipeline = entry.runtime_data.pipeline
    assert pipeline.analyzer is None
    assert [kind for _key, kind, _url in pipeline.health.endpoints()] == [ServiceKind.DETECTOR]
    report = await pipeline.health.check()
    assert [endpoint.kind for endpoint in report.endpoints] == [ServiceKind.DETECTOR]

    registry = er.async_get(hass)
    unique_ids = {
        item.unique_id for item in er.async_entries_for_config_entry(registry, entry.entry_id)
    }
    assert f"{entry.entry_id}_detector_latency" in unique_ids
    assert not [unique_id for unique_id in unique_ids if "llm" in unique_id]
    assert not [
        state.entity_id
        for state in hass.states.async_all()
        if state.entity_id.startswith("binary_sensor.") and "llm" in state.entity_id
    ]

    jobs = await pipeline.db.run(lambda session: session.scalars(select(JobRow.kind)).all())
    assert "rescore" not in jobs

    # No LLM is not an unreachable LLM: no repair issue, however long the hub runs.
    coordinator = entry.runtime_data.coordinator
    assert coordinator.data is not None
    repairs = RepairTracker(hass, entry)
    now = dt_util.utcnow()
    for minutes in (0, 10, 60):
        repairs.update(coordinator.data, camera_root_ok=True, now=now + timedelta(minutes=minutes))
    issues = ir.async_get(hass).issues
    assert not [key for key in issues if key[0] == DOMAIN and "llm" in key[1]]
