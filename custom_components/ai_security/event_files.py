"""Which of an event's derived files exist (its key frame, its clip), and their signed URLs.

Shared by the media source (what an event plays and shows) and the search action (the card's
pictures); a file that is missing, or a link leading out of the media folder, counts as absent.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from homeassistant.core import HomeAssistant

from .core.derived import CLIP, KEY_FRAME, DerivedMedia
from .core.models import SecurityEvent
from .media_paths import async_sign_media_url, media_root


@dataclass(frozen=True, kw_only=True, slots=True)
class EventFiles:
    """Which derived files of an event exist: (path relative to the media root, real path)."""

    key_frame: tuple[str, Path] | None = None
    clip: tuple[str, Path] | None = None


async def async_event_media_urls(
    hass: HomeAssistant, entry_id: str, events: Sequence[SecurityEvent]
) -> dict[str, tuple[str | None, str | None]]:
    """Return each event's signed key-frame and clip URLs (None for a file that is missing).

    For the dashboard card, whose <img> and <video> cannot send a token: the URLs are signed
    for the user asking, like the media browser's. One executor job checks every file.
    """
    media = DerivedMedia(media_root(hass, entry_id))

    def files() -> list[tuple[str, EventFiles]]:
        return [(event.event_id, find_event_files(media, event)) for event in events]

    urls: dict[str, tuple[str | None, str | None]] = {}
    for event_id, found in await hass.async_add_executor_job(files):
        urls[event_id] = (
            async_sign_media_url(hass, entry_id, found.key_frame[0]) if found.key_frame else None,
            async_sign_media_url(hass, entry_id, found.clip[0]) if found.clip else None,
        )
    return urls


def find_event_files(media: DerivedMedia, event: SecurityEvent) -> EventFiles:
    """Return the event's key frame and clip that exist on disk; blocking.

    A file that is a link leading out of the media folder counts as missing.
    """

    def existing(path: Path) -> tuple[str, Path] | None:
        relative = media.relative(path)
        try:
            real = media.resolve(relative)
        except ValueError:
            return None
        return (relative, real) if real.is_file() else None

    try:
        folder = media.event_dir(event.camera_id, event.event_id, event.started_at)
    except ValueError:
        return EventFiles()  # ids that cannot name a folder: the event has no files
    return EventFiles(key_frame=existing(folder / KEY_FRAME), clip=existing(folder / CLIP))
