"""The "AI Security" media source: each camera's events by day, with key frames and clips.

Tree: cameras (one level of hubs above them when several are loaded) -> days, newest first, in
the user's time zone -> that day's events, 50 a page. Identifiers are the path to a node:
`<entry>`, `<entry>/<camera>`, `<entry>/<camera>/<YYYY-MM-DD>`, its further pages
`<entry>/<camera>/<YYYY-MM-DD>/page/<n>`, and an event `<entry>/<camera>/<YYYY-MM-DD>/<event>`.
An event plays its clip when it has one, else its annotated key frame (which exist is found by
event_files.py). The files are served by the authenticated view of media_view.py, which only reads
the entry's derived-media folder.
"""

from datetime import date, timedelta
import re
from typing import TYPE_CHECKING, Final, cast, override

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
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .ai_task_judge import FRAMES_FOLDER, frame_path
from .const import DEFAULT_NAME, DOMAIN
from .core import operations
from .core.derived import DerivedMedia, safe_component
from .event_files import EventFiles, find_event_files
from .media_paths import async_sign_media_url, media_root, media_url
from .media_view import MIME_TYPES, async_register_view

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry
    from .core.models import SecurityEvent

PAGE_SIZE: Final = 50
"""Events listed under a day (or one of its further pages)."""
MAX_PAGE: Final = 10_000
TITLE_SUMMARY_LENGTH: Final = 80
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_PAGE: Final = re.compile(r"[1-9]\d{0,4}")
_MARKUP: Final = re.compile(r"[*`#]+")
_SPACE: Final = re.compile(r"\s+")


async def async_get_media_source(hass: HomeAssistant) -> AiSecurityMediaSource:
    """Return the integration's media source (and make sure its files can be served)."""
    async_register_view(hass)
    return AiSecurityMediaSource(hass)


def _summary_title(text: str) -> str:
    """Return text as one line of plain text, at most TITLE_SUMMARY_LENGTH characters."""
    plain = _SPACE.sub(
        " ", _MARKUP.sub("", "".join(ch for ch in text if ch.isprintable() or ch.isspace()))
    ).strip()
    if len(plain) <= TITLE_SUMMARY_LENGTH:
        return plain
    return plain[: TITLE_SUMMARY_LENGTH - 1].rstrip() + "…"


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
        if len(parts) == 4 and parts[1] == FRAMES_FOLDER:
            return await self._resolve_frame(item.identifier, *parts)
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
        files = await self.hass.async_add_executor_job(find_event_files, media, event)
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

    async def _resolve_frame(
        self, identifier: str, entry_id: str, _folder: str, token: str, name: str
    ) -> PlayMedia:
        """Return the file of a picture sent to an AI Task with a verdict (while it is there).

        Not browsable: these ids exist only for the length of one task (ai_task_judge.py).
        """
        self._entry(entry_id, Unresolvable)
        root = media_root(self.hass, entry_id)
        path = await self.hass.async_add_executor_job(frame_path, root, token, name)
        if path is None:
            raise Unresolvable(
                translation_domain=DOMAIN,
                translation_key="media_not_found",
                translation_placeholders={"identifier": identifier},
            )
        relative = f"{FRAMES_FOLDER}/{token}/{name}"
        return PlayMedia(media_url(entry_id, relative), MIME_TYPES[".jpg"], path=path)

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
            lambda: [find_event_files(media, event) for event in events]
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
        self, entry_id: str, day_id: str, event: SecurityEvent, files: EventFiles
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
