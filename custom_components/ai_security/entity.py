"""Base entities: one for camera devices (pushed by the pipeline), one for the hub (polled)."""

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

from .camera_state import CameraState
from .const import DOMAIN
from .coordinator import AiSecurityCoordinator
from .core.models import Camera
from .hub import AiSecurityHub
from .signals import SIGNAL_CAMERA_ADDED, SIGNAL_CAMERA_STATE

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


class AiSecurityCameraEntity(Entity):
    """An entity of one camera's device, written whenever the hub says its camera changed."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: AiSecurityHub, camera: Camera, description: EntityDescription) -> None:
        """Describe the entity; unique ids stay stable when the folder's label changes."""
        self.hub = hub
        self.camera = camera
        self.entity_description = description
        self._attr_unique_id = f"{hub.entry_id}_{camera.camera_id}_{description.key}"
        self._attr_device_info = camera_device_info(hub, camera)

    @property
    @override
    def available(self) -> bool:
        """Return whether the camera folder is there to upload into."""
        return self.hub.camera_root_ok

    @property
    def state_data(self) -> CameraState:
        """Return what the hub knows of this camera now."""
        return self.hub.cameras[self.camera.camera_id]

    @override
    async def async_added_to_hass(self) -> None:
        """Write the state whenever the hub announces a change of this camera."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                SIGNAL_CAMERA_STATE.format(self.hub.entry_id, self.camera.camera_id),
                self._handle_camera_update,
            )
        )

    @callback
    def _handle_camera_update(self) -> None:
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
