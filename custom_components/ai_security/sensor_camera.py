"""Each camera's sensors: risk score and level, detections today, activity anomaly, last objects.

Risk score and risk level show the camera's latest security event for RISK_HOLD (10 minutes) after
it ended, then score 0 and level "clear" until the next event: a dashboard shows what is going on
now, and a history graph shows each event as a block rather than one step that never ends.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .camera_state import RISK_HOLD, CameraState
from .core.models import Camera, RiskLevel
from .core.uploads import shown
from .entity import AiSecurityCameraEntity
from .hub import AiSecurityHub

RISK_CLEAR = "clear"
"""The risk level while no event is current."""

MAX_STATE = 255
"""Home Assistant refuses longer states."""


@dataclass(frozen=True, kw_only=True)
class CameraSensorDescription(SensorEntityDescription):
    """A camera sensor: its value and attributes from the camera's state at a moment."""

    value_fn: Callable[[CameraState, datetime], Any]
    attributes_fn: Callable[[CameraState, datetime], dict[str, Any]] = lambda _s, _n: {}
    follows_risk: bool = False
    """Whether the value changes when the current event's hold ends (needs a timer)."""


def _risk_score(state: CameraState, now: datetime) -> int:
    event = state.current_event(now)
    return event.risk_score if event is not None else 0


def _risk_level(state: CameraState, now: datetime) -> str:
    event = state.current_event(now)
    return event.risk_level.value if event is not None else RISK_CLEAR


def _risk_attributes(state: CameraState, now: datetime) -> dict[str, Any]:
    event = state.current_event(now)
    if event is None:
        return {}
    return {"event_id": event.event_id, "summary": event.summary, "source": event.source.value}


def _anomaly(state: CameraState, _now: datetime) -> float | None:
    """Return how unusual the latest batch was for the hour (0 = typical).

    Unknown after a restart until the next event: the figure is not stored.
    """
    event = state.latest_event
    return None if event is None else event.anomaly_score


def _anomaly_attributes(state: CameraState, _now: datetime) -> dict[str, Any]:
    event = state.latest_event
    if event is None or event.anomaly_score is None:
        return {}
    return {
        "event_id": event.event_id,
        "unusual": event.anomaly_note,
        "learning": event.anomaly_learning,
    }


def _last_objects(state: CameraState, _now: datetime) -> str | None:
    if not state.last_detections:
        return None
    labels = ", ".join(dict.fromkeys(d.label for d in state.last_detections))
    return labels[:MAX_STATE]


def _last_objects_attributes(state: CameraState, _now: datetime) -> dict[str, Any]:
    if not state.last_detections:
        return {}
    return {
        "detections": [
            {"class": d.label, "confidence": round(d.confidence, 3)}
            for d in state.last_detections[:20]
        ],
        "file": shown(state.last_detections[-1].path),
        "detected_at": state.last_detection_at.isoformat() if state.last_detection_at else None,
    }


CAMERA_SENSORS: tuple[CameraSensorDescription, ...] = (
    CameraSensorDescription(
        key="risk_score",
        translation_key="risk_score",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_risk_score,
        attributes_fn=_risk_attributes,
        follows_risk=True,
    ),
    CameraSensorDescription(
        key="risk_level",
        translation_key="risk_level",
        device_class=SensorDeviceClass.ENUM,
        options=[RISK_CLEAR, *(level.value for level in RiskLevel)],
        value_fn=_risk_level,
        attributes_fn=_risk_attributes,
        follows_risk=True,
    ),
    CameraSensorDescription(
        key="detections_today",
        translation_key="detections_today",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state, _now: state.detections_today,
    ),
    CameraSensorDescription(
        key="suppressed_today",
        translation_key="suppressed_today",
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda state, _now: state.suppressed_today,
    ),
    CameraSensorDescription(
        key="activity_anomaly",
        translation_key="activity_anomaly",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=_anomaly,
        attributes_fn=_anomaly_attributes,
    ),
    CameraSensorDescription(
        key="last_detected_objects",
        translation_key="last_detected_objects",
        value_fn=_last_objects,
        attributes_fn=_last_objects_attributes,
    ),
)


class CameraSensor(AiSecurityCameraEntity, SensorEntity):
    """A sensor of a camera's device."""

    entity_description: CameraSensorDescription

    def __init__(
        self, hub: AiSecurityHub, camera: Camera, description: CameraSensorDescription
    ) -> None:
        """Describe the sensor."""
        super().__init__(hub, camera, description)
        self._hold_timer: CALLBACK_TYPE | None = None

    @property
    @override
    def native_value(self) -> Any:
        """Return the value now."""
        return self.entity_description.value_fn(self.state_data, dt_util.utcnow())

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the attributes now."""
        return self.entity_description.attributes_fn(self.state_data, dt_util.utcnow())

    @override
    async def async_added_to_hass(self) -> None:
        """Also wake up when the current event's hold ends."""
        await super().async_added_to_hass()
        self._schedule_hold_end()
        self.async_on_remove(self._cancel_hold_timer)

    @callback
    @override
    def _handle_camera_update(self) -> None:
        self._schedule_hold_end()
        super()._handle_camera_update()

    @callback
    def _schedule_hold_end(self) -> None:
        self._cancel_hold_timer()
        if not self.entity_description.follows_risk:
            return
        event = self.state_data.current_event(dt_util.utcnow())
        if event is not None:
            self._hold_timer = async_track_point_in_utc_time(
                self.hass, self._hold_ended, event.ended_at + RISK_HOLD
            )

    @callback
    def _hold_ended(self, _now: datetime) -> None:
        self._hold_timer = None
        self.async_write_ha_state()

    @callback
    def _cancel_hold_timer(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer()
            self._hold_timer = None
