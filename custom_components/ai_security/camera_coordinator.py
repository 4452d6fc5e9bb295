"""The cameras' entities' one state model: a push coordinator the hub feeds as things happen.

The hub's entities read the polled HubData of coordinator.py; the cameras' entities read this
coordinator's CameraStates, so every entity follows a coordinator. Nothing is fetched here: the
pipeline reports detections and events when they happen, the hub keeps them in each camera's
CameraState and says which cameras changed. A new event, a batch that opens or closes, a switch
turned: at once. Detections: gathered by Home Assistant's Debouncer for STATE_FLUSH_DELAY, then
one update names every camera that changed, so a busy camera writes its state once a second
rather than once per image, sparing the recorder and the bus.

Apart from coordinator.py because the hub feeds it: that module imports the hub, so the hub
importing it back would tie them in a cycle (tests/library/test_import_cycles.py). For the same
reason the entry is typed as a plain ConfigEntry here.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .camera_state import CameraState
from .const import DOMAIN, LOGGER

STATE_FLUSH_DELAY: Final = 1.0
"""Seconds detections are gathered before the cameras' entities write them: a busy camera then
writes its state once a second, not once per image, sparing the recorder and the bus."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraStates:
    """One update of the cameras' entities: every camera's state, which changed, the folder."""

    cameras: Mapping[str, CameraState]
    """Every camera's state by id: a read-only view of the CameraState objects the hub keeps
    (it changes them in place; a camera it adds is there at once for its new entities)."""
    changed: frozenset[str] = frozenset()
    """The cameras whose entities write their state with this update; the others skip it, so
    an update costs the writes of the cameras that changed, not of every camera."""
    camera_root_ok: bool = True
    """Whether the camera folder is there (an unmounted share makes it vanish): the cameras'
    entities are unavailable while it is not."""


class AiSecurityCameraCoordinator(DataUpdateCoordinator[CameraStates]):
    """Push only: no interval, no fetch; the hub says which cameras changed, now or soon."""

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, cameras: dict[str, CameraState]
    ) -> None:
        """Follow the hub's cameras (the dict it keeps them in); nothing changed yet."""
        super().__init__(hass, LOGGER, config_entry=entry, name=f"{DOMAIN} {entry.title} cameras")
        self._cameras = MappingProxyType(cameras)
        self._dirty: set[str] = set()
        self._flush = Debouncer(
            hass, LOGGER, cooldown=STATE_FLUSH_DELAY, immediate=False, function=self._flush_dirty
        )
        self.data = CameraStates(cameras=self._cameras)

    @callback
    def changed(self, *camera_ids: str, at_once: bool = False) -> None:
        """Have the cameras' entities write their state: now, or with the next flush.

        A camera written now is written with its detections gathered so far; the flush then
        leaves it out (unless it changes again meanwhile).
        """
        if not camera_ids:
            return
        if not at_once:
            self._dirty.update(camera_ids)
            self._flush.async_schedule_call()
            return
        self._dirty.difference_update(camera_ids)
        self._publish(frozenset(camera_ids), self.data.camera_root_ok)

    @callback
    def set_camera_root_ok(self, ok: bool) -> None:
        """Note whether the camera folder is there; every camera's entities follow it at once."""
        if ok == self.data.camera_root_ok:
            return
        self._dirty.clear()
        self._publish(frozenset(self._cameras), ok)

    @callback
    def forget(self, camera_id: str) -> None:
        """Write nothing more for a camera that is gone."""
        self._dirty.discard(camera_id)

    @callback
    def stop(self) -> None:
        """Drop the pending flush and its timer for good (the entry unloads)."""
        self._flush.async_shutdown()
        self._dirty.clear()

    @override
    async def async_shutdown(self) -> None:
        """Stop the flush along with the coordinator (also when setup fails after the hub)."""
        await super().async_shutdown()
        self.stop()

    @override
    async def _async_update_data(self) -> CameraStates:
        """Return the states as they are: a refresh asked for (update_entity) fetches nothing."""
        return CameraStates(cameras=self._cameras, camera_root_ok=self.data.camera_root_ok)

    @callback
    def _flush_dirty(self) -> None:
        """Write, in one update, every camera that changed since the last flush."""
        dirty, self._dirty = frozenset(self._dirty), set()
        if dirty:
            self._publish(dirty, self.data.camera_root_ok)

    @callback
    def _publish(self, changed: frozenset[str], camera_root_ok: bool) -> None:
        self.async_set_updated_data(
            CameraStates(cameras=self._cameras, changed=changed, camera_root_ok=camera_root_ok)
        )
