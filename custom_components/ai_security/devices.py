"""A hub's devices in Home Assistant's registry: its own, one per camera, and whose a device is.

Every camera's device hangs off the hub's; its identifier is <entry id>_<camera id>, so two hubs
may each have a camera called front_door.
"""

from collections.abc import Sequence
import os
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN
from .core.models import Camera

MANUFACTURER: Final = "AI Security"


def folders_present(root: str, folders: Sequence[str]) -> list[bool]:
    """Return whether each camera folder is there (blocking: run it in the executor)."""
    return [os.path.isdir(os.path.join(root, folder)) for folder in folders]


def camera_identifier(entry_id: str, camera_id: str) -> tuple[str, str]:
    """Return the device registry identifier of a camera of entry_id's hub."""
    return (DOMAIN, f"{entry_id}_{camera_id}")


@callback
def async_register_hub_device(hass: HomeAssistant, entry_id: str, title: str) -> str:
    """Create (or find) the hub's device; return its id."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry_id,
        identifiers={(DOMAIN, entry_id)},
        name=title,
        manufacturer=MANUFACTURER,
        model="Detection hub",
    )
    return device.id


@callback
def async_has_camera_device(hass: HomeAssistant, entry_id: str, camera_id: str) -> bool:
    """Return whether a camera of entry_id's hub has its device (the user may have removed it)."""
    device = dr.async_get(hass).async_get_device_by_identifier(
        camera_identifier(entry_id, camera_id), entry_id
    )
    return device is not None


@callback
def async_register_camera_device(
    hass: HomeAssistant, entry_id: str, camera: Camera, hub_device_id: str | None
) -> str:
    """Create (or find) a camera's device under the hub's; return its id."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry_id,
        identifiers={camera_identifier(entry_id, camera.camera_id)},
        name=camera.name,
        manufacturer=MANUFACTURER,
        model="Upload folder",
        via_device_id=hub_device_id,
    )
    return device.id


def camera_of_device(entry_id: str, device: dr.DeviceEntry) -> str | None:
    """Return the camera id of one of entry_id's camera devices; None for any other device."""
    prefix = f"{entry_id}_"
    for domain, identifier in device.identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            return identifier.removeprefix(prefix)
    return None
