"""Serve the dashboard card and load it into every dashboard, with no manual resource to add.

The card is one plain JavaScript file (frontend/ai-security-card.js; no build step). It is
served from a static path and registered with the frontend as an extra module, under a URL that
carries a hash of the file: browsers cache it for good, and a new version of the card is a new
URL, so nobody has to clear a cache after an update.

An extra module is imported by the page beside the frontend's own bundles, not after them, so
it may run before Home Assistant's app has set up the page's custom element registry; the card
registers itself again once the app has started (see the end of the card's file). A Lovelace
resource would load after the app, but only in dashboards whose resources a user may edit, and
it would write to the user's configuration.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http.server import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

CARD_FILE: Final = "ai-security-card.js"
CARD_FOLDER: Final = Path(__file__).parent / "frontend"
URL_BASE: Final = f"/{DOMAIN}_static"
"""Where the folder is served (not under /api: the file is public code, like the frontend's)."""

_REGISTERED: HassKey[str] = HassKey(f"{DOMAIN}_card_url")


def _fingerprint(path: Path) -> str:
    """Return the first 12 hex digits of the file's SHA-256; blocking."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


async def async_register_card(hass: HomeAssistant) -> str | None:
    """Serve the card and add it to the frontend; return its URL (None without a frontend).

    Runs once per Home Assistant start; later calls return the URL registered first.
    """
    if (url := hass.data.get(_REGISTERED)) is not None:
        return url
    if "frontend" not in hass.config.components:
        return None
    version = await hass.async_add_executor_job(_fingerprint, CARD_FOLDER / CARD_FILE)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(URL_BASE, str(CARD_FOLDER), cache_headers=True)]
    )
    url = f"{URL_BASE}/{CARD_FILE}?v={version}"
    add_extra_js_url(hass, url)
    hass.data[_REGISTERED] = url
    return url
