"""Setting the entry up, unloading it, and retrying while a server or the folder is missing."""

from __future__ import annotations

from pathlib import Path
import shutil

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.core.settings import LlmApi, PipelineOptions

from .servers import ModelServer, free_port


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry, detector: ModelServer
) -> None:
    """The entry loads with its settings, probes the servers, and unloads cleanly.

    The detector's /health is asked twice: by setup (to retry later if it is down) and by the
    first health check, which the hub's sensors start from.
    """
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.llm_api is LlmApi.LLAMA_CPP
    assert entry.runtime_data.options == PipelineOptions()
    assert detector.requests == ["/health", "/health"]

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_detector_down_retries_then_recovers(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, detector: ModelServer
) -> None:
    """A detector that is down at start puts the entry in retry with a readable reason."""
    await detector.stop()
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason is not None
    assert mock_config_entry.reason.startswith(
        f"The detector server at {detector.url} is not reachable:"
    )

    await detector.start()
    await hass.config_entries.async_reload(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED


async def test_llm_loading_retries(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, llm: ModelServer
) -> None:
    """An LLM server still loading its model (503) puts the entry in retry."""
    llm.health_status = 503
    llm.health_body = {"error": {"code": 503, "message": "Loading model"}}
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason == (
        f"The LLM server at {llm.url} is not reachable: HTTP 503 from {llm.url}/health"
    )


async def test_credentials_never_in_the_reason(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, detector: ModelServer
) -> None:
    """A URL with a password is shown without it when the server is down."""
    await detector.stop()
    secret_url = detector.url.replace("http://", "http://admin:hunter2@")
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, "detector_urls": [secret_url]}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason is not None
    assert "hunter2" not in mock_config_entry.reason
    assert "admin" not in mock_config_entry.reason


async def test_camera_root_missing_retries(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, camera_root: Path
) -> None:
    """An unmounted camera share at start is retried rather than failing for good."""
    shutil.rmtree(camera_root)
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason == (
        f"The camera folder {camera_root} is missing; is its drive or network share mounted?"
    )


async def test_one_of_several_detectors_down_still_loads(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, detector: ModelServer
) -> None:
    """With two detectors, one answering is enough to start; both down is a retry."""
    mock_config_entry.add_to_hass(hass)
    down = f"http://127.0.0.1:{free_port()}"
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, "detector_urls": [down, detector.url]}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    assert mock_config_entry.runtime_data.detector_urls == [down, detector.url]
    await hass.config_entries.async_unload(mock_config_entry.entry_id)

    await detector.stop()
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert mock_config_entry.reason is not None
    assert mock_config_entry.reason.startswith(f"The detector server at {down} is not reachable")


async def test_entry_from_version_1_1_is_migrated(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, detector: ModelServer
) -> None:
    """An entry saved with one detector URL (1.1) gets the list of URLs (1.2) and loads."""
    data = {key: value for key, value in mock_config_entry.data.items() if key != "detector_urls"}
    old = MockConfigEntry(
        domain=mock_config_entry.domain,
        unique_id=mock_config_entry.unique_id,
        data={**data, "detector_url": detector.url},
        version=1,
        minor_version=1,
    )
    old.add_to_hass(hass)
    await hass.config_entries.async_setup(old.entry_id)
    await hass.async_block_till_done()
    assert old.state is ConfigEntryState.LOADED
    assert old.minor_version == 2
    assert old.data["detector_urls"] == [detector.url]
    assert "detector_url" not in old.data


async def test_entry_from_a_newer_version_is_left_alone(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """An entry written by a newer major version is not touched (migration refuses)."""
    newer = MockConfigEntry(
        domain=mock_config_entry.domain, data=dict(mock_config_entry.data), version=2
    )
    newer.add_to_hass(hass)
    await hass.config_entries.async_setup(newer.entry_id)
    await hass.async_block_till_done()
    assert newer.state is ConfigEntryState.MIGRATION_ERROR
