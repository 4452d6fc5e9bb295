"""The bridge between the pipeline and Home Assistant: devices, bus events and dispatcher signals.

The pipeline (core/) knows nothing of Home Assistant; this module turns what it reports into what
users automate on: an `ai_security_event` per security event, an `ai_security_detection` per
detected object, a device per camera, and dispatcher signals the entity platforms listen to.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .const import DOMAIN
from .core.models import Camera, Detection, SecurityEvent
from .core.pipeline import Pipeline, PipelineCallbacks

EVENT_SECURITY: Final = f"{DOMAIN}_event"
EVENT_DETECTION: Final = f"{DOMAIN}_detection"
EVENT_RESCORED: Final = f"{DOMAIN}_event_rescored"
SIGNAL_CAMERA_ADDED: Final = f"{DOMAIN}_camera_added_{{}}"
SIGNAL_EVENT: Final = f"{DOMAIN}_event_{{}}"
SIGNAL_DETECTIONS: Final = f"{DOMAIN}_detections_{{}}"
SIGNAL_BATCH: Final = f"{DOMAIN}_batch_{{}}"


class AiSecurityHub:
    """One config entry's pipeline as Home Assistant sees it."""

    def __init__(self, hass: HomeAssistant, entry_id: str, title: str) -> None:
        """Prepare the hub; the pipeline is attached by attach() before it starts."""
        self.hass = hass
        self.entry_id = entry_id
        self.title = title
        self.pipeline: Pipeline | None = None
        self.device_ids: dict[str, str] = {}
        self.hub_device_id: str | None = None

    def callbacks(self) -> PipelineCallbacks:
        """Return the callbacks the pipeline reports through."""
        return PipelineCallbacks(
            camera_added=self._camera_added,
            detections=self._detections,
            event=self._event,
            batch_changed=self._batch_changed,
            event_rescored=self._event_rescored,
        )

    @callback
    def register_hub_device(self) -> None:
        """Create the hub's device, which every camera's device hangs off."""
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry_id,
            identifiers={(DOMAIN, self.entry_id)},
            name=self.title,
            manufacturer="AI Security",
            model="Detection hub",
        )
        self.hub_device_id = device.id

    @callback
    def _camera_added(self, camera: Camera) -> None:
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry_id,
            identifiers={(DOMAIN, f"{self.entry_id}_{camera.camera_id}")},
            name=camera.name,
            manufacturer="AI Security",
            model="Upload folder",
            via_device_id=self.hub_device_id,
        )
        self.device_ids[camera.camera_id] = device.id
        async_dispatcher_send(self.hass, SIGNAL_CAMERA_ADDED.format(self.entry_id), camera)

    @callback
    def _detections(self, camera: Camera, detections: list[Detection]) -> None:
        for detection in detections:
            self.hass.bus.async_fire(
                EVENT_DETECTION,
                {
                    "camera_id": camera.camera_id,
                    "camera_name": camera.name,
                    "device_id": self.device_ids.get(camera.camera_id),
                    "class": detection.label,
                    "confidence": round(detection.confidence, 4),
                    "bbox": detection.bbox.as_list(),
                    "file": detection.path,
                    "frame_time": detection.frame_time,
                },
            )
        async_dispatcher_send(
            self.hass, SIGNAL_DETECTIONS.format(self.entry_id), camera, detections
        )

    @callback
    def _event(self, camera: Camera, event: SecurityEvent) -> None:
        self.hass.bus.async_fire(EVENT_SECURITY, self.event_data(camera, event))
        async_dispatcher_send(self.hass, SIGNAL_EVENT.format(self.entry_id), camera, event)

    @callback
    def _event_rescored(self, camera: Camera, old: SecurityEvent, new: SecurityEvent) -> None:
        """Announce an LLM verdict replacing a heuristic one (not a new ai_security_event)."""
        self.hass.bus.async_fire(
            EVENT_RESCORED,
            {
                **self.event_data(camera, new),
                "previous_risk_score": old.risk_score,
                "previous_risk_level": old.risk_level.value,
                "previous_source": old.source.value,
            },
        )
        async_dispatcher_send(self.hass, SIGNAL_EVENT.format(self.entry_id), camera, new)

    def event_data(self, camera: Camera, event: SecurityEvent) -> dict[str, Any]:
        """Return the data of the ai_security_event bus event (times in ISO 8601, UTC)."""
        return {
            "event_id": event.event_id,
            "camera_id": camera.camera_id,
            "camera_name": camera.name,
            "device_id": self.device_ids.get(camera.camera_id),
            "risk_score": event.risk_score,
            "risk_level": event.risk_level.value,
            "summary": event.summary,
            "reasoning": event.reasoning,
            "object_types": list(event.object_types),
            "detection_count": event.detection_count,
            "started_at": event.started_at.isoformat(),
            "ended_at": event.ended_at.isoformat(),
            "is_fast_path": event.is_fast_path,
            "source": event.source.value,
        }

    @callback
    def _batch_changed(self, camera_id: str, is_open: bool) -> None:
        async_dispatcher_send(self.hass, SIGNAL_BATCH.format(self.entry_id), camera_id, is_open)
