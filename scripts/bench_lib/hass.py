"""A real Home Assistant in this process, and the integration's entry in it.

Home Assistant is brought up the way its bootstrap does it (async_from_config_dict), minus the
default integrations (frontend, http and the rest would open ports and install packages): the
loader with custom components, the registries and storage in a temporary configuration folder,
the core integrations, the core configuration (with the camera folder allowed), then start. The
event loop is Home Assistant's own (runner.create_event_loop: its 64-thread executor and
monotonic loop clock), and blocking I/O in the loop is reported as in production. The entry is
added through hass.config_entries, which sets it up: the real pipeline with its watchdog observer,
its database thread (SQLite in the configuration folder unless --database postgresql), Home
Assistant's shared aiohttp session and executor.
"""

import logging
from types import MappingProxyType
from typing import Any

from aiohttp.resolver import AsyncResolver
from homeassistant import bootstrap, config_entries, loader
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.helpers import aiohttp_client
from homeassistant.setup import async_setup_component

# Bind `custom_components` to this repository's package before Home Assistant's loader imports it
# (the same quirk the repository-root conftest.py handles for the tests).
import custom_components.ai_security  # noqa: F401
from custom_components.ai_security import const
from custom_components.ai_security.config_flow import AiSecurityConfigFlow

_LOGGER = logging.getLogger(__name__)


class BenchSetupError(Exception):
    """Home Assistant or the entry did not come up; the message says which part."""


def _plain_resolver(_hass: HomeAssistant) -> AsyncResolver:
    """Return a resolver without zeroconf (see start_home_assistant)."""
    resolver = AsyncResolver()
    resolver.real_close = resolver.close  # type: ignore[attr-defined]
    return resolver


async def start_home_assistant(config_dir: str, allowed: list[str]) -> HomeAssistant:
    """Return a started Home Assistant using config_dir, allowed to read the allowed folders."""
    # Home Assistant's shared aiohttp session resolves names through zeroconf, which needs the
    # network integration and multicast sockets. The stubs are IP addresses (nothing is resolved)
    # and nothing may leave the machine, so a plain resolver stands in, as in the test harness.
    aiohttp_client._async_make_resolver = _plain_resolver  # type: ignore[assignment]  # noqa: SLF001
    hass = HomeAssistant(config_dir)
    loader.async_setup(hass)
    hass.config.skip_pip = True  # the lab has the requirements; never reach for the network
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await loader.async_get_custom_components(hass)
    if not await bootstrap.async_load_base_functionality(hass):
        raise BenchSetupError("Home Assistant could not load its registries")
    for domain in sorted(bootstrap.CORE_INTEGRATIONS):
        if not await async_setup_component(hass, domain, {}):
            raise BenchSetupError(f"Home Assistant's core integration {domain} did not set up")
    await async_process_ha_core_config(
        hass,
        {
            "name": "ai_security benchmark",
            "latitude": 52.37,
            "longitude": 4.89,
            "elevation": 0,
            "unit_system": "metric",
            "time_zone": "UTC",
            "allowlist_external_dirs": allowed,
        },
    )
    await hass.async_start()
    return hass


async def add_entry(
    hass: HomeAssistant,
    *,
    camera_root: str,
    detector_url: str,
    llm_url: str,
    llm_api: str,
    options: dict[str, Any],
) -> ConfigEntry:
    """Add the integration's entry (as the config flow would store it) and set it up.

    llm_url is the one LLM server of the benchmark ("" for none: the heuristic judges).
    """
    data: dict[str, Any] = {
        const.CONF_CAMERA_ROOT: camera_root,
        const.CONF_DETECTOR_URLS: [detector_url],
        const.CONF_LLM_URLS: [llm_url] if llm_url else [],
        const.CONF_LLM_API: llm_api,
    }
    entry = ConfigEntry(
        data=data,
        discovery_keys=MappingProxyType({}),
        domain=const.DOMAIN,
        minor_version=AiSecurityConfigFlow.MINOR_VERSION,
        options=options,
        source=config_entries.SOURCE_USER,
        subentries_data=None,
        title="Benchmark",
        unique_id=camera_root,
        version=AiSecurityConfigFlow.VERSION,
    )
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    if entry.state is not ConfigEntryState.LOADED:
        raise BenchSetupError(
            f"the ai_security entry did not load: {entry.state.value}"
            + (f" ({entry.reason})" if entry.reason else "")
        )
    return entry


async def stop_home_assistant(hass: HomeAssistant, entry: ConfigEntry | None) -> None:
    """Unload the entry (joins the watcher and database threads), then stop Home Assistant."""
    if entry is not None and entry.state is ConfigEntryState.LOADED:
        try:
            await hass.config_entries.async_unload(entry.entry_id)
        except Exception:
            _LOGGER.exception("Unloading the entry failed")
    try:
        await hass.async_stop()
    except Exception:
        _LOGGER.exception("Stopping Home Assistant failed")
