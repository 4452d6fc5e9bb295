"""The job-queue actions: dead jobs are visible with their reason, and can be retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant, ServiceResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.const import DOMAIN

from .detector_server import DetectorServer, Reply, detection, detections
from .pipeline_helpers import jpeg, wait_until, write
from .test_pipeline_ha import detector_server, entry, llm_stub  # noqa: F401


async def call(hass: HomeAssistant, action: str, data: dict[str, Any]) -> ServiceResponse:
    """Call one of the integration's actions and return its response."""
    return await hass.services.async_call(DOMAIN, action, data, blocking=True, return_response=True)


async def test_list_and_requeue_dead_jobs(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """An upload the detector refuses is listed with the reason; retried, it becomes an event."""
    detector_server.answer(Reply(status=413, body={"error": "image too large"}))
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(7))

    async def listed() -> bool:
        response = await call(hass, "list_dead_jobs", {"config_entry_id": entry.entry_id})
        return bool(response and response["jobs"])

    await wait_until(listed, seconds=20, what="the dead job")
    response = await call(hass, "list_dead_jobs", {"config_entry_id": entry.entry_id})
    assert response is not None
    (job,) = response["jobs"]  # type: ignore[misc]
    assert job["kind"] == "detect"  # type: ignore[index]
    assert job["attempts"] == 1  # type: ignore[index]
    assert "413" in job["last_error"]  # type: ignore[index]

    detector_server.answer(Reply(body=detections(detection("person", 0.7, [1, 2, 3, 4]))))
    job_id = job["job_id"]  # type: ignore[index]
    response = await call(
        hass, "requeue_dead_jobs", {"config_entry_id": entry.entry_id, "job_ids": [job_id]}
    )
    assert response == {"requeued": 1}
    await wait_until(lambda: len(events) == 1, seconds=20, what="the event after the retry")
    response = await call(hass, "requeue_dead_jobs", {"config_entry_id": entry.entry_id})
    assert response == {"requeued": 0}


async def test_actions_need_a_loaded_entry(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """Naming an entry that is not loaded is a clear error, not a crash."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError):
        await call(hass, "list_dead_jobs", {"config_entry_id": entry.entry_id})
    with pytest.raises(ServiceValidationError):
        await call(hass, "requeue_dead_jobs", {"config_entry_id": "nope"})


async def test_queue_errors_are_reported(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """When the database cannot answer, the action fails with a readable, translated error."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    queue = entry.runtime_data.pipeline.queue

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk I/O error")

    queue.dead_jobs = broken  # type: ignore[method-assign]
    queue.requeue_dead = broken  # type: ignore[method-assign]
    for service in ("list_dead_jobs", "requeue_dead_jobs"):
        with pytest.raises(
            HomeAssistantError, match="The AI Security job queue cannot be read: disk I/O error"
        ):
            await call(hass, service, {"config_entry_id": entry.entry_id})
