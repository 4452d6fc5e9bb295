"""The config entry the Home Assistant tests set up: the integration on in-test servers."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)

from .pipeline_helpers import wait_until

FAST_OPTIONS: dict[str, Any] = {
    "batch_window": 1.5,
    "batch_idle_timeout": 0.5,
    "debounce": 0.1,
    "detection_events": True,
}
"""Short windows so tests do not wait 90 s (the options flow allows 10 s at least), and the
per-detection bus event on, which many tests watch."""


def hub_entry(
    hass: HomeAssistant,
    camera_root: Path,
    detector_url: str,
    llm: str | Sequence[str],
    *,
    llm_api: str = "openai",
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """Return an entry as the config flow makes it, added to hass (not set up).

    llm is the LLM server's URL ("" for none: the heuristic judges), or the URLs of a pool.
    """
    llm_urls = ([llm] if llm else []) if isinstance(llm, str) else list(llm)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id=str(camera_root),
        data={
            CONF_CAMERA_ROOT: str(camera_root),
            CONF_DETECTOR_URLS: [detector_url],
            CONF_LLM_URLS: llm_urls,
            CONF_LLM_API: llm_api,
        },
        options=FAST_OPTIONS if options is None else options,
        version=1,
        minor_version=3,
    )
    entry.add_to_hass(hass)
    return entry


class Incidents:
    """Captures a hub's incidents on the bus: each opening, and each update."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start capturing (before the uploads the test makes)."""
        self.opened = async_capture_events(hass, "ai_security_event")
        self.updates = async_capture_events(hass, "ai_security_event_updated")

    def ended(self) -> list[dict[str, Any]]:
        """Return the incidents that ended, as judged at their end, in order."""
        return [
            dict(update.data)
            for update in self.updates
            if "ended" in update.data["changed"] and not update.data["ongoing"]
        ]

    async def wait_opened(self, count: int, seconds: float = 20.0) -> None:
        """Wait until count incidents opened."""
        await wait_until(lambda: len(self.opened) >= count, seconds, f"incident {count} to open")

    async def wait_ended(self, count: int, seconds: float = 20.0) -> None:
        """Wait until count incidents ended (the next upload then opens a new one)."""
        await wait_until(lambda: len(self.ended()) >= count, seconds, f"incident {count} to end")
