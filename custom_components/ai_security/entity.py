"""Base entities: one for camera devices, one for the hub; each follows a coordinator.

One state model: a camera's entities read the cameras' coordinator (camera_coordinator.py, pushed
by the hub as the pipeline reports), the hub's entities the hub's coordinator (coordinator.py,
polled). Each writes its state when its coordinator says so, and a camera's only when its own
camera changed.
"""

from collections.abc import Callable, Collection
import re
from typing import Final, override

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .camera_coordinator import AiSecurityCameraCoordinator
from .camera_state import CameraState
from .const import DOMAIN
from .coordinator import AiSecurityCoordinator
from .core.models import Camera
from .hub import AiSecurityHub
from .signals import SIGNAL_CAMERA_ADDED

ENDPOINT_KEY: Final = re.compile(r"(detector|llm)_[0-9a-f]{12}")
"""The key of a model server endpoint's entities (core.monitor.endpoint_key)."""


def read_if_present(path: str) -> bytes | None:
    """Return a file's bytes, or None when it is gone (blocking: run it in the executor).

    Uploads and pictures may be deleted at any time (by the camera, a clean-up, retention): an
    entity then shows nothing or its fallback instead of failing.
    """
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None


def camera_device_info(hub: AiSecurityHub, camera: Camera) -> DeviceInfo:
    """Return the device of a camera folder (the hub registered it when the folder appeared)."""
    return DeviceInfo(identifiers={(DOMAIN, f"{hub.entry_id}_{camera.camera_id}")})


class AiSecurityCameraEntity(CoordinatorEntity[AiSecurityCameraCoordinator]):
    """An entity of one camera's device, written whenever the cameras' coordinator says so."""

    _attr_has_entity_name = True

    def __init__(self, hub: AiSecurityHub, camera: Camera, description: EntityDescription) -> None:
        """Describe the entity; unique ids stay stable when the folder's label changes."""
        super().__init__(hub.camera_coordinator)
        self.hub = hub
        self.camera = camera
        self.entity_description = description
        self._attr_unique_id = f"{hub.entry_id}_{camera.camera_id}_{description.key}"
        self._attr_device_info = camera_device_info(hub, camera)

    @property
    @override
    def available(self) -> bool:
        """Return whether the camera folder is there to upload into."""
        return super().available and self.coordinator.data.camera_root_ok

    @property
    def state_data(self) -> CameraState:
        """Return this camera's state as the cameras' coordinator has it now."""
        return self.coordinator.data.cameras[self.camera.camera_id]

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        """Go on only when this entity's camera is among those the update says changed.

        Every camera's entities listen to the one coordinator: without this, each camera's
        detections would write every other camera's entities too.
        """
        if self.camera.camera_id in self.coordinator.data.changed:
            self._handle_camera_update()

    @callback
    def _handle_camera_update(self) -> None:
        """Write the state, this entity's camera having changed (entities may do more or less)."""
        self.async_write_ha_state()


class AiSecurityHubEntity(CoordinatorEntity[AiSecurityCoordinator]):
    """An entity of the hub's device, refreshed by the coordinator."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: AiSecurityCoordinator, key: str) -> None:
        """Attach to the hub's device; key makes the unique id."""
        super().__init__(coordinator)
        entry_id = coordinator.config_entry.entry_id
        self._attr_unique_id = f"{entry_id}_{key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry_id)})


def add_camera_entities(
    hass: HomeAssistant,
    hub: AiSecurityHub,
    add_entities: AddConfigEntryEntitiesCallback,
    make: Callable[[Camera], list[Entity]],
) -> Callable[[], None]:
    """Add make(camera)'s entities for every known camera and for each new one.

    Returns the unsubscribe callable of the new-camera signal.
    """
    add_entities([entity for state in hub.cameras.values() for entity in make(state.camera)])

    @callback
    def _added(camera: Camera) -> None:
        add_entities(make(camera))

    return async_dispatcher_connect(hass, SIGNAL_CAMERA_ADDED.format(hub.entry_id), _added)


@callback
def remove_stale_hub_entities(
    hass: HomeAssistant, entry_id: str, platform: str, stale: Callable[[str], bool]
) -> None:
    """Delete the registry entries of the hub's platform entities whose key stale() picks.

    Home Assistant keeps an entity's registry entry after the integration stops adding it, shown
    as unavailable for good. A model server removed by reconfigure would leave its entities
    behind that way; setup removes them instead, as the stale-devices rule asks.
    """
    registry = er.async_get(hass)
    prefix = f"{entry_id}_"
    for entity in er.async_entries_for_config_entry(registry, entry_id):
        if (
            entity.domain == platform
            and entity.platform == DOMAIN
            and entity.unique_id.startswith(prefix)
            and stale(entity.unique_id.removeprefix(prefix))
        ):
            registry.async_remove(entity.entity_id)


def stale_endpoint(current: Collection[str]) -> Callable[[str], bool]:
    """Return a test for keys of endpoint entities whose endpoint is not among current."""
    return lambda key: ENDPOINT_KEY.fullmatch(key) is not None and key not in current
