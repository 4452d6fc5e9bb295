"""Setting the entry up, unloading it, and retrying while the folder is missing."""

from pathlib import Path
import shutil

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.core.monitor import ServiceKind
from custom_components.ai_security.core.settings import LlmApi, PipelineOptions
from tests.servers import ModelServer


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry, detector: ModelServer
) -> None:
    """The entry loads with its settings and unloads cleanly.

    The detector's /health is asked once, by the first health check the hub's sensors start
    from: setup itself waits for no model server.
    """
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.llm_api is LlmApi.LLAMA_CPP
    assert entry.runtime_data.options == PipelineOptions()
    assert detector.requests == ["/health"]

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_servers_down_or_loading_do_not_hold_setup_back(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    detector: ModelServer,
    llm: ModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every detector down and the LLM still loading its model (503): the entry loads anyway.

    The log says which server is down (without credentials), once.
    """
    await detector.stop()
    llm.health_status = 503
    llm.health_body = {"error": {"code": 503, "message": "Loading model"}}
    secret_url = detector.url.replace("http://", "http://admin:hunter2@")
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, "detector_urls": [secret_url]}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.LOADED
    down = [r.getMessage() for r in caplog.records if "is not reachable" in r.getMessage()]
    assert len(down) == 2
    assert any(f"detector server at {detector.url} is not reachable" in line for line in down)
    assert any(f"llm server at {llm.url} is not reachable" in line for line in down)
    assert not any("hunter2" in line for line in down)
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


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


def _old_data(entry: MockConfigEntry, **old: str) -> dict[str, object]:
    """Return entry's data as an earlier version saved it: the given keys instead of the lists."""
    lists = {"detector_urls", "llm_urls"}
    return {key: value for key, value in entry.data.items() if key not in lists} | old


async def test_entry_from_version_1_1_is_migrated(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, detector: ModelServer, llm: ModelServer
) -> None:
    """An entry saved with one detector and one LLM URL (1.1) gets both lists (1.3) and loads."""
    old = MockConfigEntry(
        domain=mock_config_entry.domain,
        unique_id=mock_config_entry.unique_id,
        data=_old_data(mock_config_entry, detector_url=detector.url, llm_url=llm.url),
        version=1,
        minor_version=1,
    )
    old.add_to_hass(hass)
    await hass.config_entries.async_setup(old.entry_id)
    await hass.async_block_till_done()
    assert old.state is ConfigEntryState.LOADED
    assert old.minor_version == 3
    assert old.data["detector_urls"] == [detector.url]
    assert old.data["llm_urls"] == [llm.url]
    assert "detector_url" not in old.data
    assert "llm_url" not in old.data


@pytest.mark.parametrize("with_llm", [True, False])
async def test_entry_from_version_1_2_is_migrated(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    detector: ModelServer,
    llm: ModelServer,
    with_llm: bool,
) -> None:
    """One LLM URL (1.2) becomes a list of one (1.3); none ("") an empty list: the heuristic.

    The migrated entry loads with that LLM server as its one endpoint, or with none.
    """
    llm_url = llm.url if with_llm else ""
    old = MockConfigEntry(
        domain=mock_config_entry.domain,
        unique_id=mock_config_entry.unique_id,
        data=_old_data(mock_config_entry, llm_url=llm_url) | {"detector_urls": [detector.url]},
        version=1,
        minor_version=2,
    )
    old.add_to_hass(hass)
    await hass.config_entries.async_setup(old.entry_id)
    await hass.async_block_till_done()
    assert old.state is ConfigEntryState.LOADED
    assert old.minor_version == 3
    expected = [llm.url] if with_llm else []
    assert old.data["llm_urls"] == expected
    assert "llm_url" not in old.data
    assert old.data["detector_urls"] == [detector.url]
    pipeline = old.runtime_data.pipeline
    assert list(pipeline.llm_breakers) == expected
    endpoints = pipeline.health.endpoints()
    assert [url for _key, kind, url in endpoints if kind is ServiceKind.LLM] == expected
    assert llm.requests == (["/health"] if with_llm else [])


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
