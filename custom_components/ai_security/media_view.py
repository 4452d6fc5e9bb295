"""The media view: an entry's derived files (key frames, thumbnails, clips) served over HTTP.

Only to signed-in users or signed URLs, only the types the pipeline derives, and only what
resolves inside the entry's derived-media folder (DerivedMedia.resolve()): a link or a path that
leads out of it is refused.
"""

from pathlib import Path
from typing import Final

from aiohttp import web
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .core.derived import DerivedMedia
from .media_paths import URL_PREFIX, media_root

MIME_TYPES: Final = {".jpg": "image/jpeg", ".mp4": "video/mp4"}
"""The only files the view serves: what the pipeline derives. Anything else there is a 404."""

_VIEW_REGISTERED: HassKey[bool] = HassKey(f"{DOMAIN}_media_view")


@callback
def async_register_view(hass: HomeAssistant) -> None:
    """Register the media view once per Home Assistant (a no-op without the http integration)."""
    if hass.data.get(_VIEW_REGISTERED) or "http" not in hass.config.components:
        return
    hass.http.register_view(AiSecurityMediaView())
    hass.data[_VIEW_REGISTERED] = True


class AiSecurityMediaView(HomeAssistantView):
    """Serve an entry's derived media (key frames, thumbnails, clips) to signed-in users."""

    url = f"{URL_PREFIX}/{{entry_id}}/{{path:.*}}"
    name = f"api:{DOMAIN}:media"
    requires_auth = True

    async def get(self, request: web.Request, entry_id: str, path: str) -> web.FileResponse:
        """Return the file path names under the entry's media folder; 404 for anything else."""
        hass = request.app[KEY_HASS]
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise web.HTTPNotFound
        suffix = path[path.rfind(".") :].lower() if "." in path else ""
        if suffix not in MIME_TYPES:
            raise web.HTTPNotFound
        media = DerivedMedia(media_root(hass, entry.entry_id))
        try:
            real = await hass.async_add_executor_job(_existing_file, media, path)
        except ValueError as err:
            raise web.HTTPBadRequest from err
        if real is None:
            raise web.HTTPNotFound
        return web.FileResponse(
            real,
            headers={
                "Content-Type": MIME_TYPES[suffix],
                "Cache-Control": "private, max-age=3600",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _existing_file(media: DerivedMedia, relative: str) -> Path | None:
    """Return the real path of relative under the media root if it is a file; blocking.

    Raises ValueError (from resolve) for a path that could lead outside the folder.
    """
    real = media.resolve(relative)
    if not real.is_file() or real.name.startswith("."):
        return None
    return real
