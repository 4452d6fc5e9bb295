"""Sensors: each camera's risk, level, detections today and last objects; the hub's diagnostics.

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
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    Platform,
    UnitOfInformation,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .camera_state import RISK_HOLD, CameraState
from .coordinator import AiSecurityConfigEntry, AiSecurityCoordinator, HubData
from .core.gpu import GpuReading
from .core.models import Camera, RiskLevel
from .core.monitor import ServiceKind, ServiceStatus
from .core.uploads import shown
from .entity import (
    AiSecurityCameraEntity,
    AiSecurityHubEntity,
    add_camera_entities,
    remove_stale_hub_entities,
)
from .hub import AiSecurityHub

PARALLEL_UPDATES = 0

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


@dataclass(frozen=True, kw_only=True)
class HubSensorDescription(SensorEntityDescription):
    """A hub sensor: its value from the latest refresh, and what must be up for it to count."""

    value_fn: Callable[[HubData, AiSecurityHub], Any]
    attributes_fn: Callable[[AiSecurityHub], dict[str, Any]] | None = None
    source: ServiceKind | None = None
    """The service whose figures it shows: unavailable while that service is unhealthy."""


def _gpu(field: str) -> Callable[[HubData, AiSecurityHub], Any]:
    def value(data: HubData, _hub: AiSecurityHub) -> Any:
        reading: GpuReading | None = data.gpu
        return None if reading is None else getattr(reading, field)

    return value


def _latency(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _last_cleanup(hub: AiSecurityHub) -> Any:
    stats = hub.last_cleanup
    return None if stats is None else stats.finished_at


def _cleanup_attributes(hub: AiSecurityHub) -> dict[str, Any]:
    stats = hub.last_cleanup
    return {} if stats is None else stats.as_dict()


HUB_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="last_cleanup",
        translation_key="last_cleanup",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda _data, hub: _last_cleanup(hub),
        attributes_fn=_cleanup_attributes,
    ),
    HubSensorDescription(
        key="detection_queue",
        translation_key="detection_queue",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data, _hub: data.queue.get("detect_queued", 0),
    ),
    HubSensorDescription(
        key="analysis_queue",
        translation_key="analysis_queue",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data, _hub: data.queue.get("analyze_queued", 0),
    ),
    HubSensorDescription(
        key="dead_letter_jobs",
        translation_key="dead_letter_jobs",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data, _hub: data.dead_jobs,
    ),
    HubSensorDescription(
        key="events_today",
        translation_key="events_today",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda _data, hub: hub.events_today,
    ),
    HubSensorDescription(
        key="images_processed",
        translation_key="images_processed",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        state_class=SensorStateClass.TOTAL_INCREASING,
        value_fn=lambda data, _hub: data.images_processed,
    ),
    HubSensorDescription(
        key="detector_latency",
        translation_key="detector_latency",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda data, _hub: _latency(data.health.detector_latency_p50_ms),
        source=ServiceKind.DETECTOR,
    ),
    HubSensorDescription(
        key="llm_latency",
        translation_key="llm_latency",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda data, _hub: _latency(data.health.llm_latency_p50_ms),
        source=ServiceKind.LLM,
    ),
)

GPU_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="gpu_utilization",
        translation_key="gpu_utilization",
        entity_category=EntityCategory.DIAGNOSTIC,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_gpu("utilization"),
    ),
    HubSensorDescription(
        key="gpu_memory_used",
        translation_key="gpu_memory_used",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_gpu("memory_used_mb"),
    ),
    HubSensorDescription(
        key="gpu_memory_total",
        translation_key="gpu_memory_total",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        value_fn=_gpu("memory_total_mb"),
    ),
    HubSensorDescription(
        key="gpu_temperature",
        translation_key="gpu_temperature",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_gpu("temperature_c"),
    ),
    HubSensorDescription(
        key="gpu_power",
        translation_key="gpu_power",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_gpu("power_w"),
    ),
)


class HubSensor(AiSecurityHubEntity, SensorEntity):
    """A diagnostic sensor of the hub's device."""

    entity_description: HubSensorDescription

    def __init__(self, coordinator: AiSecurityCoordinator, description: HubSensorDescription):
        """Describe the sensor."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    @override
    def available(self) -> bool:
        """Return whether the figure can be trusted now: its source answered the last check."""
        if not super().available:
            return False
        source = self.entity_description.source
        if source is not None and self.coordinator.data.health.status_of(source) is (
            ServiceStatus.UNHEALTHY
        ):
            return False
        return self.native_value is not None or not self.entity_description.key.startswith("gpu")

    @property
    @override
    def native_value(self) -> Any:
        """Return the value from the latest refresh."""
        return self.entity_description.value_fn(self.coordinator.data, self.coordinator.hub)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the details some hub sensors carry (the clean-up's figures)."""
        attributes = self.entity_description.attributes_fn
        return None if attributes is None else attributes(self.coordinator.hub)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the camera sensors (now and for cameras found later) and the hub's sensors."""
    data = entry.runtime_data
    hub = data.hub
    coordinator = data.coordinator
    hub_sensors = [
        HubSensor(coordinator, description)
        for description in HUB_SENSORS
        # Without an LLM server (heuristic scoring only) there is no LLM latency to show.
        if description.source is not ServiceKind.LLM or data.llm_url
    ]
    # A reconfigure that removed the LLM server leaves no LLM latency sensor behind.
    added = {sensor.entity_description.key for sensor in hub_sensors}
    served = {d.key for d in HUB_SENSORS if d.source is not None}
    remove_stale_hub_entities(
        hass, entry.entry_id, Platform.SENSOR, lambda key: key in served and key not in added
    )
    if coordinator.data is not None and coordinator.data.gpu is not None:
        # Only a host or detector that reports a GPU gets GPU sensors.
        hub_sensors.extend(HubSensor(coordinator, description) for description in GPU_SENSORS)
    async_add_entities(hub_sensors)
    entry.async_on_unload(
        add_camera_entities(
            hass,
            hub,
            async_add_entities,
            lambda camera: [CameraSensor(hub, camera, d) for d in CAMERA_SENSORS],
        )
    )
