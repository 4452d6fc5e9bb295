"""Image entity per camera: the annotated key frame of its latest security event."""

from datetime import datetime
from typing import override

from homeassistant.components.image import ImageEntity, ImageEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AiSecurityConfigEntry
from .core.models import Camera
from .entity import AiSecurityCameraEntity, add_camera_entities, read_if_present
from .hub import AiSecurityHub

PARALLEL_UPDATES = 0

EVENT_SNAPSHOT = ImageEntityDescription(key="event_snapshot", translation_key="event_snapshot")


class EventSnapshotImage(AiSecurityCameraEntity, ImageEntity):
    """The latest event's key frame; image_last_updated moves with each new one."""

    _attr_content_type = "image/jpeg"

    def __init__(self, hass: HomeAssistant, hub: AiSecurityHub, camera: Camera) -> None:
        """Describe the image entity."""
        AiSecurityCameraEntity.__init__(self, hub, camera, EVENT_SNAPSHOT)
        ImageEntity.__init__(self, hass)

    @property
    @override
    def image_last_updated(self) -> datetime | None:
        """Return when the key frame shown was written."""
        return self.state_data.event_image_at

    @property
    @override
    def extra_state_attributes(self) -> dict[str, str | None]:
        """Return which event the picture belongs to."""
        return {"event_id": self.state_data.event_image_event_id}

    @override
    async def async_image(self) -> bytes | None:
        """Return the key frame, or None when it was deleted."""
        path = self.state_data.event_image
        if path is None:
            return None
        return await self.hass.async_add_executor_job(read_if_present, str(path))


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add every camera's image entity, now and for cameras found later."""
    hub = entry.runtime_data.hub
    entry.async_on_unload(
        add_camera_entities(
            hass, hub, async_add_entities, lambda camera: [EventSnapshotImage(hass, hub, camera)]
        )
    )
