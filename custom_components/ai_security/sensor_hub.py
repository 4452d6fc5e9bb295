"""The hub's diagnostic sensors: queues, dead letters, events today, latencies, clean-up, load.

Read from the coordinator's refresh; a figure whose service (detector or LLM server) failed its
last check shows unavailable rather than a stale number.

The load figures come in groups that only some set-ups have (FIGURE_GROUPS): the GPU's (NVML on
this host, or a detector that reports its GPU), the detector server's own queue (a server that
says queue_depth in /health), the LLM servers' slots (llama.cpp servers only). A group's sensors
are added at the first refresh that has its figures, and are unavailable while a figure is
missing; a set-up that never has them never gets them.
"""

from collections.abc import Callable
from dataclasses import dataclass
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
    UnitOfInformation,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)

from .coordinator import AiSecurityCoordinator, HubData
from .core.gpu import GpuReading
from .core.monitor import ServiceKind, ServiceStatus
from .entity import AiSecurityHubEntity
from .hub import AiSecurityHub


@dataclass(frozen=True, kw_only=True)
class HubSensorDescription(SensorEntityDescription):
    """A hub sensor: its value from the latest refresh, and what must be up for it to count."""

    value_fn: Callable[[HubData, AiSecurityHub], Any]
    attributes_fn: Callable[[AiSecurityHub], dict[str, Any]] | None = None
    source: ServiceKind | None = None
    """The service whose figures it shows: unavailable while that service is unhealthy."""
    needs_value: bool = False
    """Unavailable while its figure is missing (a figure that only some servers report)."""


def _gpu(field: str) -> Callable[[HubData, AiSecurityHub], Any]:
    def value(data: HubData, _hub: AiSecurityHub) -> Any:
        reading: GpuReading | None = data.gpu
        return None if reading is None else getattr(reading, field)

    return value


def _slots(field: str) -> Callable[[HubData, AiSecurityHub], Any]:
    def value(data: HubData, _hub: AiSecurityHub) -> Any:
        slots = data.health.llm_slots
        return None if slots is None else getattr(slots, field)

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
        needs_value=True,
        value_fn=_gpu("utilization"),
    ),
    HubSensorDescription(
        key="gpu_memory_used",
        translation_key="gpu_memory_used",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        # NVML counts MiB; a card's tens of GiB read better as 127.0 GiB than 130,000.00 MiB.
        suggested_unit_of_measurement=UnitOfInformation.GIBIBYTES,
        suggested_display_precision=1,
        state_class=SensorStateClass.MEASUREMENT,
        needs_value=True,
        value_fn=_gpu("memory_used_mb"),
    ),
    HubSensorDescription(
        key="gpu_memory_total",
        translation_key="gpu_memory_total",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.MEBIBYTES,
        # NVML counts MiB; a card's tens of GiB read better as 127.0 GiB than 130,000.00 MiB.
        suggested_unit_of_measurement=UnitOfInformation.GIBIBYTES,
        suggested_display_precision=1,
        needs_value=True,
        value_fn=_gpu("memory_total_mb"),
    ),
    HubSensorDescription(
        key="gpu_temperature",
        translation_key="gpu_temperature",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        needs_value=True,
        value_fn=_gpu("temperature_c"),
    ),
    HubSensorDescription(
        key="gpu_power",
        translation_key="gpu_power",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        needs_value=True,
        value_fn=_gpu("power_w"),
    ),
)

DETECTOR_QUEUE_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="detector_server_queue",
        translation_key="detector_server_queue",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda data, _hub: data.health.detector_queue_depth,
        source=ServiceKind.DETECTOR,
        needs_value=True,
    ),
)
"""Images waiting for the detection model, at every detector server that says (summed)."""

LLM_SLOT_SENSORS: tuple[HubSensorDescription, ...] = (
    HubSensorDescription(
        key="llm_busy_slots",
        translation_key="llm_busy_slots",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=_slots("busy"),
        source=ServiceKind.LLM,
        needs_value=True,
    ),
    HubSensorDescription(
        key="llm_total_slots",
        translation_key="llm_total_slots",
        entity_category=EntityCategory.DIAGNOSTIC,
        # Fixed by the servers' --parallel: registered, off until a user wants it.
        entity_registry_enabled_default=False,
        value_fn=_slots("total"),
        source=ServiceKind.LLM,
        needs_value=True,
    ),
)
"""The llama.cpp servers' slots: requests running now, and how many may run at once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FigureGroup:
    """Sensors added once a refresh has their figures (see the module's docstring)."""

    seen: Callable[[HubData], bool]
    descriptions: tuple[HubSensorDescription, ...]


FIGURE_GROUPS: tuple[FigureGroup, ...] = (
    FigureGroup(seen=lambda data: data.gpu is not None, descriptions=GPU_SENSORS),
    FigureGroup(
        seen=lambda data: data.health.detector_queue_depth is not None,
        descriptions=DETECTOR_QUEUE_SENSORS,
    ),
    FigureGroup(seen=lambda data: data.health.llm_slots is not None, descriptions=LLM_SLOT_SENSORS),
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
        return self.native_value is not None or not self.entity_description.needs_value

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
