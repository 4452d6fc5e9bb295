"""AI Security: local threat detection for upload-folder cameras, set up from the UI."""

from __future__ import annotations

from dataclasses import dataclass
import os

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import CONF_CAMERA_ROOT, CONF_DETECTOR_URL, CONF_LLM_API, CONF_LLM_URL, DOMAIN
from .core.health import probe_all, redact_url
from .core.settings import LlmApi, PipelineOptions

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = []


@dataclass(kw_only=True, slots=True)
class AiSecurityRuntimeData:
    """What a loaded entry holds: its resolved settings (the pipeline joins them later)."""

    camera_root: str
    detector_url: str
    llm_url: str
    llm_api: LlmApi
    options: PipelineOptions


type AiSecurityConfigEntry = ConfigEntry[AiSecurityRuntimeData]


async def async_setup_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> bool:
    """Start the hub once its folder is there and both model servers answer; retry otherwise."""
    camera_root: str = entry.data[CONF_CAMERA_ROOT]
    if not await hass.async_add_executor_job(os.path.isdir, camera_root):
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="camera_root_missing",
            translation_placeholders={"path": camera_root},
        )

    runtime = AiSecurityRuntimeData(
        camera_root=camera_root,
        detector_url=entry.data[CONF_DETECTOR_URL],
        llm_url=entry.data[CONF_LLM_URL],
        llm_api=LlmApi(entry.data[CONF_LLM_API]),
        options=PipelineOptions.from_mapping(dict(entry.options)),
    )
    detector_error, llm_error = await probe_all(
        async_get_clientsession(hass), runtime.detector_url, runtime.llm_url, runtime.llm_api
    )
    if detector_error is not None:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="detector_unreachable",
            translation_placeholders={
                "url": redact_url(runtime.detector_url),
                "error": str(detector_error),
            },
        ) from detector_error
    if llm_error is not None:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="llm_unreachable",
            translation_placeholders={"url": redact_url(runtime.llm_url), "error": str(llm_error)},
        ) from llm_error

    entry.runtime_data = runtime
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> bool:
    """Unload the platforms; nothing else of the entry keeps running."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
