"""The "AI Security" media source: each camera's events by day, with key frames and clips.

Tree: cameras (one level of hubs above them when several are loaded) -> days, newest first, in
the user's time zone -> that day's events, 50 a page. Identifiers are the path to a node:
`<entry>`, `<entry>/<camera>`, `<entry>/<camera>/<YYYY-MM-DD>`, its further pages
`<entry>/<camera>/<YYYY-MM-DD>/page/<n>`, and an event `<entry>/<camera>/<YYYY-MM-DD>/<event>`.
An event plays its clip when it has one, else its annotated key frame. The files are served by an
authenticated view that only reads the entry's derived-media folder, through DerivedMedia.resolve().
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
import re
from typing import TYPE_CHECKING, Final, cast, override

from aiohttp import web
from homeassistant.components.media_player.const import MediaClass
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import DEFAULT_NAME, DOMAIN
from .core import operations
from .core.derived import CLIP, KEY_FRAME, DerivedMedia, safe_component
from .media_paths import URL_PREFIX, async_sign_media_url, media_root, media_url

if TYPE_CHECKING:
    from pathlib import Path

    from .coordinator import AiSecurityConfigEntry
    from .core.models import SecurityEvent

PAGE_SIZE: Final = 50
"""Events listed under a day (or one of its further pages)."""
MAX_PAGE: Final = 10_000
TITLE_SUMMARY_LENGTH: Final = 80
MIME_TYPES: Final = {".jpg": "image/jpeg", ".mp4": "video/mp4"}
"""The only files the view serves: what the pipeline derives. Anything else there is a 404."""

_VIEW_REGISTERED: HassKey[bool] = HassKey(f"{DOMAIN}_media_view")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_PAGE: Final = re.compile(r"[1-9]\d{0,4}")
_MARKUP: Final = re.compile(r"[*`#]+")
_SPACE: Final = re.compile(r"\s+")


@callback
def async_register_view(hass: HomeAssistant) -> None:
    """Register the media view once per Home Assistant (a no-op without the http integration)."""
    if hass.data.get(_VIEW_REGISTERED) or "http" not in hass.config.components:
        return
    hass.http.register_view(AiSecurityMediaView())
    hass.data[_VIEW_REGISTERED] = True


async def async_get_media_source(hass: HomeAssistant) -> AiSecurityMediaSource:
    """Return the integration's media source (and make sure its files can be served)."""
    async_register_view(hass)
    return AiSecurityMediaSource(hass)


@dataclass(frozen=True, kw_only=True, slots=True)
class _EventFiles:
    """Which derived files of an event exist: (path relative to the media root, real path)."""

    key_frame: tuple[str, Path] | None = None
    clip: tuple[str, Path] | None = None


def _summary_title(text: str) -> str:
    """Return text as one line of plain text, at most TITLE_SUMMARY_LENGTH characters."""
    plain = _SPACE.sub(
        " ", _MARKUP.sub("", "".join(ch for ch in text if ch.isprintable() or ch.isspace()))
    ).strip()
    if len(plain) <= TITLE_SUMMARY_LENGTH:
        return plain
    return plain[: TITLE_SUMMARY_LENGTH - 1].rstrip() + "…"


async def async_event_media_urls(
    hass: HomeAssistant, entry_id: str, events: Sequence[SecurityEvent]
) -> dict[str, tuple[str | None, str | None]]:
    """Return each event's signed key-frame and clip URLs (None for a file that is missing).

    For the dashboard card, whose <img> and <video> cannot send a token: the URLs are signed
    for the user asking, like the media browser's. One executor job checks every file.
    """
    media = DerivedMedia(media_root(hass, entry_id))

    def files() -> list[tuple[str, _EventFiles]]:
        return [(event.event_id, _event_files(media, event)) for event in events]

    urls: dict[str, tuple[str | None, str | None]] = {}
    for event_id, found in await hass.async_add_executor_job(files):
        urls[event_id] = (
            async_sign_media_url(hass, entry_id, found.key_frame[0]) if found.key_frame else None,
            async_sign_media_url(hass, entry_id, found.clip[0]) if found.clip else None,
        )
    return urls


def _event_files(media: DerivedMedia, event: SecurityEvent) -> _EventFiles:
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
        return _EventFiles()  # ids that cannot name a folder: the event has no files
    return _EventFiles(key_frame=existing(folder / KEY_FRAME), clip=existing(folder / CLIP))


class AiSecurityMediaSource(MediaSource):
    """Browse the events of every loaded AI Security entry; play their clips and key frames."""

    name = DEFAULT_NAME

    def __init__(self, hass: HomeAssistant) -> None:
        """Serve hass's entries."""
        super().__init__(DOMAIN)
        self.hass = hass

    # --- identifiers ----------------------------------------------------------------------------

    def _entry(
        self, entry_id: str, error: type[BrowseError | Unresolvable]
    ) -> AiSecurityConfigEntry:
        entry = self.hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
            raise error(
                translation_domain=DOMAIN,
                translation_key="media_entry_not_loaded",
                translation_placeholders={"entry_id": entry_id},
            )
        return cast("AiSecurityConfigEntry", entry)

    @staticmethod
    def _invalid(
        identifier: str, error: type[BrowseError | Unresolvable]
    ) -> BrowseError | Unresolvable:
        return error(
            translation_domain=DOMAIN,
            translation_key="invalid_media_id",
            translation_placeholders={"identifier": identifier},
        )

    # --- resolving ------------------------------------------------------------------------------

    @override
    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        """Return the URL of an event's clip, or of its key frame when it has no clip."""
        parts = item.identifier.split("/") if item.identifier else []
        if len(parts) != 4:
            raise self._invalid(item.identifier, Unresolvable)
        entry_id, camera_id, day, event_id = parts
        if not _valid_ids(camera_id, event_id) or _parse_day(day) is None:
            raise self._invalid(item.identifier, Unresolvable)
        entry = self._entry(entry_id, Unresolvable)
        pipeline = entry.runtime_data.pipeline
        event = await operations.get_event(pipeline.db, event_id)
        if event is None or event.camera_id != camera_id:
            raise Unresolvable(
                translation_domain=DOMAIN,
                translation_key="media_not_found",
                translation_placeholders={"identifier": item.identifier},
            )
        media = DerivedMedia(media_root(self.hass, entry_id))
        files = await self.hass.async_add_executor_job(_event_files, media, event)
        if files.clip is not None:
            relative, real = files.clip
            return PlayMedia(media_url(entry_id, relative), MIME_TYPES[".mp4"], path=real)
        if files.key_frame is not None:
            relative, real = files.key_frame
            return PlayMedia(media_url(entry_id, relative), MIME_TYPES[".jpg"], path=real)
        raise Unresolvable(
            translation_domain=DOMAIN,
            translation_key="media_not_found",
            translation_placeholders={"identifier": item.identifier},
        )

    # --- browsing -------------------------------------------------------------------------------

    @override
    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        """Return the node item names, with its children."""
        identifier = item.identifier or ""
        parts = identifier.split("/") if identifier else []
        if not parts:
            return await self._browse_root()
        entry = self._entry(parts[0], BrowseError)
        if len(parts) == 1:
            return await self._browse_entry(entry, identifier, entry.title)
        camera_id = parts[1]
        if not _valid_ids(camera_id) or camera_id not in entry.runtime_data.hub.cameras:
            raise self._invalid(identifier, BrowseError)
        if len(parts) == 2:
            return await self._browse_camera(entry, camera_id)
        day = _parse_day(parts[2])
        if day is None:
            raise self._invalid(identifier, BrowseError)
        if len(parts) == 3:
            return await self._browse_day(entry, camera_id, day, 1)
        if len(parts) == 5 and parts[3] == "page" and _PAGE.fullmatch(parts[4]):
            page = int(parts[4])
            if page <= MAX_PAGE:
                return await self._browse_day(entry, camera_id, day, page)
        # An event is a leaf: there is nothing below it to browse.
        raise self._invalid(identifier, BrowseError)

    def _folder(self, identifier: str | None, title: str) -> BrowseMediaSource:
        return BrowseMediaSource(
            domain=DOMAIN,
            identifier=identifier,
            media_class=MediaClass.DIRECTORY,
            media_content_type="",
            title=title,
            can_play=False,
            can_expand=True,
            children_media_class=MediaClass.DIRECTORY,
        )

    async def _browse_root(self) -> BrowseMediaSource:
        entries = cast(
            "list[AiSecurityConfigEntry]", self.hass.config_entries.async_loaded_entries(DOMAIN)
        )
        if len(entries) == 1:
            return await self._browse_entry(entries[0], None, DEFAULT_NAME)
        root = self._folder(None, DEFAULT_NAME)
        root.children = [
            self._folder(entry.entry_id, entry.title)
            for entry in sorted(entries, key=lambda entry: entry.title.casefold())
        ]
        return root

    async def _browse_entry(
        self, entry: AiSecurityConfigEntry, identifier: str | None, title: str
    ) -> BrowseMediaSource:
        counts = await operations.camera_event_counts(entry.runtime_data.pipeline.db)
        cameras = sorted(
            entry.runtime_data.hub.cameras.values(), key=lambda state: state.camera.name.casefold()
        )
        node = self._folder(identifier, title)
        node.children = [
            self._folder(
                f"{entry.entry_id}/{state.camera.camera_id}",
                _with_count(state.camera.name, counts.get(state.camera.camera_id, 0)),
            )
            for state in cameras
        ]
        return node

    async def _browse_camera(
        self, entry: AiSecurityConfigEntry, camera_id: str
    ) -> BrowseMediaSource:
        tz = dt_util.get_default_time_zone()
        days = await operations.event_days(entry.runtime_data.pipeline.db, camera_id, tz)
        camera = entry.runtime_data.hub.cameras[camera_id].camera
        node = self._folder(f"{entry.entry_id}/{camera_id}", camera.name)
        node.children = [
            self._folder(f"{entry.entry_id}/{camera_id}/{day.isoformat()}", day.isoformat())
            for day in days
        ]
        return node

    async def _browse_day(
        self, entry: AiSecurityConfigEntry, camera_id: str, day: date, page: int
    ) -> BrowseMediaSource:
        start = dt_util.as_utc(dt_util.start_of_local_day(day))
        end = dt_util.as_utc(dt_util.start_of_local_day(day + timedelta(days=1)))
        found = await operations.day_page(
            entry.runtime_data.pipeline.db, camera_id, start, end, page=page, page_size=PAGE_SIZE
        )
        events = found.events
        media = DerivedMedia(media_root(self.hass, entry.entry_id))
        files = await self.hass.async_add_executor_job(
            lambda: [_event_files(media, event) for event in events]
        )
        day_id = f"{entry.entry_id}/{camera_id}/{day.isoformat()}"
        camera = entry.runtime_data.hub.cameras[camera_id].camera
        title = f"{camera.name} · {day.isoformat()}"
        node = self._folder(day_id if page == 1 else f"{day_id}/page/{page}", title)
        node.children_media_class = (
            MediaClass.VIDEO if any(f.clip for f in files) else MediaClass.IMAGE
        )
        children: list[BrowseMediaSource] = [
            self._event_node(entry.entry_id, day_id, event, found)
            for event, found in zip(events, files, strict=True)
        ]
        if found.more:
            children.append(self._folder(f"{day_id}/page/{page + 1}", "More…"))
        node.children = children
        return node

    def _event_node(
        self, entry_id: str, day_id: str, event: SecurityEvent, files: _EventFiles
    ) -> BrowseMediaSource:
        local = dt_util.as_local(event.started_at)
        title = (
            f"{local:%H:%M} · {event.risk_level.value.title()} · {_summary_title(event.summary)}"
        )
        video = files.clip is not None
        return BrowseMediaSource(
            domain=DOMAIN,
            identifier=f"{day_id}/{event.event_id}",
            media_class=MediaClass.VIDEO if video else MediaClass.IMAGE,
            media_content_type=MIME_TYPES[".mp4"] if video else MIME_TYPES[".jpg"],
            title=title,
            can_play=video or files.key_frame is not None,
            can_expand=False,
            thumbnail=(
                async_sign_media_url(self.hass, entry_id, files.key_frame[0])
                if files.key_frame is not None
                else None
            ),
        )


def _with_count(name: str, count: int) -> str:
    return f"{name} ({count})"


def _valid_ids(*values: str) -> bool:
    try:
        for value in values:
            safe_component(value)
    except ValueError:
        return False
    return True


def _parse_day(value: str) -> date | None:
    if not _DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


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
