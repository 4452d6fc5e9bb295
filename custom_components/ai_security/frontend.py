"""Serve the dashboard card and load it into every dashboard, with no manual resource to add.

The card is a folder of plain JavaScript modules (frontend/; no build step): the entry,
frontend/ai-security-card.js, imports the others by relative URL (`./card.js`). The folder is
served from a static path whose URL carries a hash of all its files, and the entry is registered
with the frontend as an extra module under that path. A relative import resolves inside the same
versioned path, so every module, not only the entry, has a URL of its own version: browsers
cache them all for good, a change to any module is a new URL for all of them, and nobody has to
clear a cache after an update, nor can a new entry meet a stale module. (A query string on the
entry would not do: relative imports do not carry it over.)

An extra module is imported by the page beside the frontend's own bundles, not after them, so
it may run before Home Assistant's app has set up the page's custom element registry; the card
registers itself again once the app has started (see the end of the entry). A Lovelace
resource would load after the app, but only in dashboards whose resources a user may edit, and
it would write to the user's configuration.
"""

import hashlib
from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http.server import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

CARD_FILE: Final = "ai-security-card.js"
"""The entry module; it keeps the name the card had as a single file."""
CARD_FOLDER: Final = Path(__file__).parent / "frontend"
URL_BASE: Final = f"/{DOMAIN}_static"
"""Where the folder is served, under a version (not under /api: the files are public code)."""

_REGISTERED: HassKey[str] = HassKey(f"{DOMAIN}_card_url")


def card_version(folder: Path = CARD_FOLDER) -> str:
    """Return 12 hex digits of a SHA-256 over every file in the folder; blocking.

    Every file counts, by its path in the folder and its content, because the static path
    serves every file: a module changed, added, removed or renamed is a new version.
    """
    digest = hashlib.sha256()
    for path in sorted(path for path in folder.rglob("*") if path.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


async def async_register_card(hass: HomeAssistant) -> str | None:
    """Serve the card and add it to the frontend; return its URL (None without a frontend).

    Runs once per Home Assistant start; later calls return the URL registered first.
    """
    if (url := hass.data.get(_REGISTERED)) is not None:
        return url
    if "frontend" not in hass.config.components:
        return None
    version = await hass.async_add_executor_job(card_version)
    folder_url = f"{URL_BASE}/{version}"
    await hass.http.async_register_static_paths(
        [StaticPathConfig(folder_url, str(CARD_FOLDER), cache_headers=True)]
    )
    url = f"{folder_url}/{CARD_FILE}"
    add_extra_js_url(hass, url)
    hass.data[_REGISTERED] = url
    return url
