"""Where an entry's derived media lives, and the signed URLs under which the media view serves it.

Apart from the media source (media_source.py) and its view (media_view.py) because the hub's bus
events carry signed URLs too: the hub is part of an entry's runtime data, so what it imports must
not need the config entry type, which the media source does.
"""

from datetime import timedelta
from typing import Final
from urllib.parse import quote

from homeassistant.components.http.auth import async_sign_path
from homeassistant.components.media_player.const import CONTENT_AUTH_EXPIRY_TIME
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .core.derived import safe_component

URL_PREFIX: Final = f"/api/{DOMAIN}/media"


def media_root(hass: HomeAssistant, entry_id: str) -> str:
    """Return the folder an entry's derived media (key frames, thumbnails, clips) live in."""
    return hass.config.path(DOMAIN, "media", safe_component(entry_id, "entry id"))


def media_url(entry_id: str, relative: str) -> str:
    """Return the view's (unsigned) URL of a file given relative to the entry's media root."""
    return f"{URL_PREFIX}/{quote(entry_id, safe='')}/{quote(relative)}"


@callback
def async_sign_media_url(hass: HomeAssistant, entry_id: str, relative: str) -> str:
    """Return the view's URL of a media file, signed for a browser to load without a header."""
    return async_sign_path(
        hass, media_url(entry_id, relative), timedelta(seconds=CONTENT_AUTH_EXPIRY_TIME)
    )


@callback
def async_sign_notification_url(hass: HomeAssistant, entry_id: str, relative: str) -> str | None:
    """Return a media file's URL signed for a phone to load without a token, or None.

    Bus events carry these: the automation that sends a notification runs without a user, so
    the URL is signed for Home Assistant's content user (as the camera proxy's are) and stays
    valid for a day (until Home Assistant restarts, which renews its signing key). None when
    Home Assistant serves no HTTP (nothing could load it).
    """
    if "http" not in hass.config.components:
        return None
    return async_sign_path(
        hass,
        media_url(entry_id, relative),
        timedelta(seconds=CONTENT_AUTH_EXPIRY_TIME),
        use_content_user=True,
    )
