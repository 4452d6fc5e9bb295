"""Camera entity per camera folder: the latest detected frame, annotated, as a still image.

No stream: the picture changes when a detection comes in. It is drawn on request (dashboards,
camera.snapshot, mobile notifications through camera_proxy) and cached per frame, so a busy camera
costs nothing until somebody looks. When the upload is gone, the latest event's key frame is shown.
"""

from functools import partial
from typing import Any, override

from homeassistant.components.camera import Camera as CameraEntity, CameraEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import LOGGER
from .coordinator import AiSecurityConfigEntry
from .core.annotate import AnnotateError, annotate
from .core.models import Camera
from .core.zone_drawing import draw_zones
from .entity import AiSecurityCameraEntity, add_camera_entities, read_if_present
from .hub import AiSecurityHub

PARALLEL_UPDATES = 0

LATEST_DETECTION = CameraEntityDescription(
    key="latest_detection", translation_key="latest_detection"
)


class LatestDetectionCamera(AiSecurityCameraEntity, CameraEntity):
    """The camera's latest detected frame with its boxes drawn."""

    def __init__(self, hub: AiSecurityHub, camera: Camera) -> None:
        """Describe the camera entity."""
        AiSecurityCameraEntity.__init__(self, hub, camera, LATEST_DETECTION)
        CameraEntity.__init__(self)
        self._frame_key: tuple[Any, ...] | None = None
        self._frame_jpeg: bytes | None = None

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return what the picture shows and when it was captured."""
        state = self.state_data
        event = state.latest_event
        return {
            "event_id": event.event_id if event is not None else None,
            "risk_level": event.risk_level.value if event is not None else None,
            "object_types": sorted({d.label for d in state.last_detections}),
            "captured": state.last_detection_at.isoformat() if state.last_detection_at else None,
        }

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return the annotated latest frame (the latest event's key frame when it is gone)."""
        state = self.state_data
        detections = state.last_detections
        if detections:
            first = detections[0]
            key = (first.path, first.frame_time, tuple(d.detection_id for d in detections))
            if key == self._frame_key and self._frame_jpeg is not None:
                return self._frame_jpeg
            pipeline = self.hub.pipeline
            image = (
                None
                if pipeline is None
                else await pipeline.read_frame(first.path, first.frame_time)  # a clip: decoded
            )
            if image is not None:
                try:
                    frame = await self.hass.async_add_executor_job(annotate, image, detections)
                except AnnotateError as err:
                    LOGGER.debug("Cannot draw %s: %s", first.path, err)
                else:
                    self._frame_key, self._frame_jpeg = key, frame.jpeg
                    return frame.jpeg
        if state.event_image is not None:
            return await self.hass.async_add_executor_job(read_if_present, str(state.event_image))
        return None


ZONES = CameraEntityDescription(
    key="zones", translation_key="zones", entity_registry_enabled_default=False
)


class ZonesCamera(AiSecurityCameraEntity, CameraEntity):
    """The camera's latest picture with its zones drawn, to check the polygons against it.

    Off by default: it is a tool for setting zones up, enabled while doing so.
    """

    def __init__(self, hub: AiSecurityHub, camera: Camera) -> None:
        """Describe the camera entity."""
        AiSecurityCameraEntity.__init__(self, hub, camera, ZONES)
        CameraEntity.__init__(self)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the zones drawn (name, kind, priority) and the learned spots drawn."""
        pipeline = self.hub.pipeline
        found = pipeline.zones_of(self.camera.camera_id) if pipeline is not None else None
        spots = pipeline.learned_spots(self.camera.camera_id) if pipeline is not None else ()
        return {
            "zones": [
                {"name": zone.name, "kind": zone.kind.value, "priority": zone.priority}
                for zone in (found or ())
            ],
            "learned_spots": [spot.as_dict() for spot in spots],
        }

    @override
    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        """Return the latest upload (or event key frame) with the zones drawn on it."""
        state = self.state_data
        image: bytes | None = None
        pipeline = self.hub.pipeline
        uploads = [d.path for d in state.last_detections if d.frame_time is None][:1]
        if uploads and pipeline is not None:
            image = await pipeline.read_frame(uploads[0], None)
        if image is None and state.event_image is not None:
            image = await self.hass.async_add_executor_job(read_if_present, str(state.event_image))
        if image is None:
            return None
        found = pipeline.zones_of(self.camera.camera_id) if pipeline is not None else None
        spots = pipeline.learned_spots(self.camera.camera_id) if pipeline is not None else ()
        if not found and not spots:
            return image
        try:
            return await self.hass.async_add_executor_job(
                partial(
                    draw_zones,
                    image,
                    tuple(found or ()),
                    spots=[(spot.label, spot.box) for spot in spots],
                )
            )
        except AnnotateError as err:
            LOGGER.debug("Cannot draw the zones of %s: %s", self.camera.name, err)
            return image


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add every camera's camera entity, now and for cameras found later."""
    hub = entry.runtime_data.hub
    entry.async_on_unload(
        add_camera_entities(
            hass,
            hub,
            async_add_entities,
            lambda camera: [LatestDetectionCamera(hub, camera), ZonesCamera(hub, camera)],
        )
    )
