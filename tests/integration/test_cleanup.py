"""The daily clean-up in a real Home Assistant: scheduled at the option's time, shown, audited."""

from datetime import timedelta
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.storage import DetectionRow, EventRow, MediaRow
from tests.pipeline_helpers import jpeg, wait_until, write

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call, set_up


async def test_cleanup_runs_at_its_time_and_spares_kept_events(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """At 03:00 events past retention go (kept ones stay); the sensor and the trail show it."""
    await set_up(hass, entry)
    events = async_capture_events(hass, "ai_security_event")
    for n, name in enumerate(("Gate", "Shed")):
        await hass.async_add_executor_job(write, camera_root / name / "a.jpg", jpeg(10 + n))
        await wait_until(lambda n=n: len(events) == n + 1, seconds=20, what=f"event {n + 1}")
    pipeline = entry.runtime_data.pipeline
    await pipeline.wait_for_media()
    _old_id, kept_id = (event.data["event_id"] for event in events)
    long_ago = dt_util.utcnow() - timedelta(days=40)

    def age(session: Session) -> None:
        # Both events, their detections and uploads become 40 days old; one is flagged keep.
        session.execute(update(EventRow).values(started_at=long_ago, ended_at=long_ago))
        session.execute(update(EventRow).where(EventRow.event_id == kept_id).values(keep=True))
        session.execute(update(DetectionRow).values(detected_at=long_ago))
        session.execute(update(MediaRow).values(received_at=long_ago))

    await pipeline.db.run(age)
    now = dt_util.now()
    three = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if three <= now:
        three += timedelta(days=1)
    cleanup = entry.runtime_data.cleanup
    assert cleanup.last is None
    async_fire_time_changed(hass, three + timedelta(seconds=1))
    await wait_until(lambda: cleanup.last is not None, seconds=30, what="the clean-up")

    remaining = await pipeline.db.run(
        lambda session: sorted(session.scalars(select(EventRow.event_id)).all())
    )
    assert remaining == [kept_id]
    stats = cleanup.last
    assert stats is not None
    assert stats.events == 1
    registry = er.async_get(hass)
    sensor_id = registry.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_last_cleanup")
    assert sensor_id is not None
    await entry.runtime_data.coordinator.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(sensor_id)
    assert state is not None
    assert dt_util.parse_datetime(state.state) == stats.finished_at.replace(microsecond=0)
    assert state.attributes["events"] == 1
    log = await call(
        hass,
        "get_audit_log",
        {"config_entry_id": entry.entry_id, "action": "retention_run"},
    )
    assert isinstance(log, dict)
    (record,) = log["records"]
    assert record["success"] is True
    assert record["arguments"] == {"days": 30, "delete_uploads": False}
    assert record["result"]["events"] == 1
