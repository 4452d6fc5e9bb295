"""Repairs issues for what only the user can fix: the folder, servers, failed jobs, disk, load.

RepairTracker.async_refresh listens to the coordinator: setup registers it with
async_add_refresh_listener, and each refresh's figures reach it before that refresh completes.
The coordinator fetches and knows nothing of Repairs, so only this module imports the other.

An issue is raised when its cause is found (a model server only once it has been unreachable for
UNREACHABLE_AFTER, so a restart does not nag) and deleted as soon as the cause is gone. Issue ids
end with the entry id, so two hubs have their own issues.

The load issues follow the coordinator's load conditions (core/load.py), which already hold a
figure over time and with hysteresis: one issue per kind (gpu_temperature, gpu_utilization,
gpu_memory, llm_slots), a warning at the warning level and an error at the critical one, raised
when the condition starts and deleted when it ends. None is fixable: it clears itself.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
import os
import shutil
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import CONF_CAMERA_ROOT, CONF_DATABASE_URL, DOMAIN
from .core.database_url import InvalidDatabaseUrlError, describe_database_url
from .core.load import LoadCondition, LoadKind, LoadLevel
from .core.monitor import ServiceKind, ServiceStatus
from .media_paths import media_root

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry, HubData

UNREACHABLE_AFTER: Final = timedelta(minutes=5)
"""How long a model server must stay unreachable before the user is told."""
LOW_DISK_FRACTION: Final = 0.05
"""Free space, as a share of the disk, below which the disk counts as almost full."""
DISK_CHECK_INTERVAL: Final = timedelta(minutes=1)

ISSUE_CAMERA_ROOT: Final = "camera_root_missing"
ISSUE_DETECTOR: Final = "detector_unreachable"
ISSUE_LLM: Final = "llm_unreachable"
ISSUE_DEAD_JOBS: Final = "dead_letter_jobs"
ISSUE_LOW_DISK: Final = "low_disk_space"
ISSUE_DETECTOR_REPLIES: Final = "detector_replies_implausible"
ISSUE_PICTURES_REFUSED: Final = "llm_pictures_refused"
LOAD_ISSUES: Final = tuple(kind.value for kind in LoadKind)
"""One issue per load kind, named as the kind."""
ISSUES: Final = (
    ISSUE_CAMERA_ROOT,
    ISSUE_DETECTOR,
    ISSUE_LLM,
    ISSUE_DEAD_JOBS,
    ISSUE_LOW_DISK,
    ISSUE_DETECTOR_REPLIES,
    ISSUE_PICTURES_REFUSED,
    *LOAD_ISSUES,
)
LOAD_SEVERITY: Final = {
    LoadLevel.WARNING: ir.IssueSeverity.WARNING,
    LoadLevel.CRITICAL: ir.IssueSeverity.ERROR,
}


def issue_id(key: str, entry_id: str) -> str:
    """Return the id of an entry's issue of kind key."""
    return f"{key}_{entry_id}"


@callback
def async_delete_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Delete every issue of an entry (when it is unloaded or removed)."""
    for key in ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(key, entry_id))


@dataclass(frozen=True, kw_only=True, slots=True)
class DiskUsage:
    """The disk one or more of the integration's folders live on."""

    paths: tuple[str, ...]
    total: int
    free: int

    @property
    def low(self) -> bool:
        """Return whether less than LOW_DISK_FRACTION of the disk is free."""
        return self.total > 0 and self.free / self.total < LOW_DISK_FRACTION


def disk_usage(paths: Iterable[str]) -> list[DiskUsage]:
    """Return the usage of each disk holding one of paths, once per disk; blocking.

    A path that does not exist yet (the media folder before the first event) is measured at its
    nearest existing parent; a path that cannot be measured at all is left out.
    """
    by_device: dict[int, DiskUsage] = {}
    for path in paths:
        existing = os.path.abspath(path)
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        try:
            device = os.stat(existing).st_dev
            if device not in by_device:
                usage = shutil.disk_usage(existing)
                by_device[device] = DiskUsage(paths=(), total=usage.total, free=usage.free)
        except OSError:
            continue
        known = by_device[device]
        by_device[device] = replace(known, paths=(*known.paths, path))
    return list(by_device.values())


def _figure(value: float) -> str:
    """Return a figure as the issue texts show it: 87, 96.3 (their units are in the text)."""
    return f"{round(value, 1):g}"


def load_placeholders(condition: LoadCondition, data: HubData) -> dict[str, str]:
    """Return a load issue's value, level and server.

    The GPU's figures are shown against the level's limit; the LLM's slots as the busy count
    against the pool's total (its condition is in percent busy, 100 when every slot is).
    """
    value, level = _figure(condition.value), _figure(condition.limit)
    slots = data.health.llm_slots
    if condition.kind is LoadKind.LLM_SLOTS and slots is not None and slots.total is not None:
        value, level = str(slots.busy), str(slots.total)
    return {"value": value, "level": level, "server": condition.server}


def _size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def database_folder(url: str) -> str | None:
    """Return the folder of a SQLite database file, None for a server database (or in memory)."""
    try:
        return describe_database_url(url).folder
    except InvalidDatabaseUrlError:
        return None


class RepairTracker:
    """Raises and clears one entry's issues from what each refresh found."""

    def __init__(self, hass: HomeAssistant, entry: AiSecurityConfigEntry) -> None:
        """Track entry's issues; nothing is raised before the first update."""
        self.hass = hass
        self.entry = entry
        self._unreachable_since: dict[ServiceKind, datetime] = {}
        self._disk_checked_at: datetime | None = None
        self._load_levels: dict[LoadKind, LoadLevel] = {}
        """The level each load issue was raised at."""

    @property
    def _placeholders(self) -> dict[str, str]:
        return {"title": self.entry.title}

    @callback
    def _set(
        self,
        key: str,
        active: bool,
        severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
        placeholders: dict[str, str] | None = None,
    ) -> None:
        """Create (or refresh) the issue key when active, delete it otherwise."""
        identifier = issue_id(key, self.entry.entry_id)
        if not active:
            ir.async_delete_issue(self.hass, DOMAIN, identifier)
            return
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            identifier,
            data={"entry_id": self.entry.entry_id},
            is_fixable=False,
            severity=severity,
            translation_key=key,
            translation_placeholders={**self._placeholders, **(placeholders or {})},
        )

    @callback
    def update(self, data: HubData, *, camera_root_ok: bool, now: datetime) -> None:
        """Raise or clear the issues that data and the camera folder's state call for."""
        self.camera_root(ok=camera_root_ok)
        self._service(data, ServiceKind.DETECTOR, ISSUE_DETECTOR, now)
        self._service(data, ServiceKind.LLM, ISSUE_LLM, now)
        dead = data.dead_jobs
        self._set(ISSUE_DEAD_JOBS, dead > 0, placeholders={"count": str(dead)})
        self._set(
            ISSUE_DETECTOR_REPLIES,
            bool(data.implausible_replies),
            ir.IssueSeverity.ERROR,
            {
                "endpoints": ", ".join(sorted(data.implausible_replies)),
                "problem": "; ".join(sorted(set(data.implausible_replies.values()))),
            },
        )
        # A server that refuses pictures still judges (from the text): worth knowing, not urgent.
        self._set(
            ISSUE_PICTURES_REFUSED,
            bool(data.pictures_refused),
            ir.IssueSeverity.WARNING,
            {
                "endpoints": ", ".join(sorted(data.pictures_refused)),
                "error": "; ".join(sorted(set(data.pictures_refused.values()))),
            },
        )
        self._load(data)

    @callback
    def _load(self, data: HubData) -> None:
        """Raise an issue per load condition that holds (its level as severity), clear the rest.

        An issue is raised when its condition starts and again only when its level changes: its
        figures are those of that moment. Rewriting it with every refresh's figure would save
        the issue registry and tell the frontend every few seconds while a GPU runs hot.
        """
        held = {condition.kind: condition for condition in data.load}
        for kind in LoadKind:
            condition = held.get(kind)
            if condition is None:
                self._load_levels.pop(kind, None)
                self._set(kind.value, False)
                continue
            if self._load_levels.get(kind) is condition.level:
                continue
            self._load_levels[kind] = condition.level
            self._set(
                kind.value,
                True,
                LOAD_SEVERITY[condition.level],
                load_placeholders(condition, data),
            )

    @callback
    def camera_root(self, *, ok: bool) -> None:
        """Raise the camera-folder issue, or clear it (setup raises it when the folder is gone)."""
        self._set(
            ISSUE_CAMERA_ROOT,
            not ok,
            ir.IssueSeverity.ERROR,
            {"path": str(self.entry.data[CONF_CAMERA_ROOT])},
        )

    @callback
    def _service(self, data: HubData, kind: ServiceKind, key: str, now: datetime) -> None:
        """Raise a service's issue once every endpoint of its pool stayed unreachable long enough.

        One endpoint answering is enough (status_of gives the best one's status): the pool
        sends its work there, so nothing waits on the user. The issue names every endpoint.
        """
        watched = any(endpoint.kind is kind for endpoint in data.health.endpoints)
        # A service with no endpoint (no LLM server set) cannot be unreachable.
        if not watched or data.health.status_of(kind) is not ServiceStatus.UNHEALTHY:
            self._unreachable_since.pop(kind, None)
            self._set(key, False)
            return
        since = self._unreachable_since.setdefault(kind, now)
        if now - since < UNREACHABLE_AFTER:
            return
        endpoints = [e for e in data.health.endpoints if e.kind is kind]
        error = next((e.last_error for e in endpoints if e.last_error), None) or "no answer"
        self._set(
            key,
            True,
            ir.IssueSeverity.ERROR,
            {
                "since": dt_util.as_local(since).strftime("%Y-%m-%d %H:%M"),
                "urls": ", ".join(e.url for e in endpoints),
                "error": error,
            },
        )

    @callback
    def update_disk(self, usages: Iterable[DiskUsage]) -> None:
        """Raise the low-disk issue for the fullest disk below the limit, or clear it."""
        low = sorted((usage for usage in usages if usage.low), key=lambda u: u.free / u.total)
        if not low:
            self._set(ISSUE_LOW_DISK, False)
            return
        fullest = low[0]
        self._set(
            ISSUE_LOW_DISK,
            True,
            placeholders={
                "paths": ", ".join(fullest.paths),
                "free": _size(fullest.free),
                "percent": f"{100 * fullest.free / fullest.total:.1f}",
            },
        )

    async def async_check_disk(self, paths: Iterable[str]) -> None:
        """Measure the disks of paths (in the executor) and raise or clear the low-disk issue."""
        usages = await self.hass.async_add_executor_job(disk_usage, list(paths))
        self.update_disk(usages)

    def disk_paths(self) -> list[str]:
        """Return the folders whose disks are watched: the media folder and a SQLite database's."""
        paths = [media_root(self.hass, self.entry.entry_id)]
        database_url = str(self.entry.options.get(CONF_DATABASE_URL) or "")
        if not database_url:
            paths.append(self.hass.config.path(DOMAIN))
        elif (folder := database_folder(database_url)) is not None:
            paths.append(folder)
        return paths

    async def async_refresh(self, data: HubData, now: datetime | None = None) -> None:
        """Check everything after a coordinator refresh: the folder, the servers, jobs, disks.

        The disks are measured at most once every DISK_CHECK_INTERVAL.
        """
        now = now or dt_util.utcnow()
        root = str(self.entry.data[CONF_CAMERA_ROOT])
        camera_root_ok = data.camera_root_ok and await self.hass.async_add_executor_job(
            self._camera_root_ok, root
        )
        self.update(data, camera_root_ok=camera_root_ok, now=now)
        if self._disk_checked_at is None or now - self._disk_checked_at >= DISK_CHECK_INTERVAL:
            self._disk_checked_at = now
            await self.async_check_disk(self.disk_paths())

    def _camera_root_ok(self, root: str) -> bool:
        """Return whether the camera folder exists and Home Assistant may read it; blocking."""
        return os.path.isdir(root) and self.hass.config.is_allowed_path(root)

    @callback
    def clear(self) -> None:
        """Delete every issue of the entry and forget what was tracked (the entry unloads)."""
        self._unreachable_since.clear()
        self._disk_checked_at = None
        self._load_levels.clear()
        async_delete_issues(self.hass, self.entry.entry_id)
