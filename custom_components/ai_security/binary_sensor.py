"""Binary sensors: each camera's activity, each model server's connectivity, the server load.

A camera is active while it has an open batch; Server load is the hub's problem sensor, on while
a load condition holds (core/load.py: a hot, saturated or full GPU, no free LLM slot).
"""

from typing import Any, override

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .coordinator import AiSecurityConfigEntry, AiSecurityCoordinator
from .core.load import LoadLevel
from .core.monitor import EndpointHealth, ServiceKind, ServiceStatus
from .core.resilience import CircuitState
from .entity import (
    AiSecurityCameraEntity,
    AiSecurityHubEntity,
    add_camera_entities,
    remove_stale_hub_entities,
    stale_endpoint,
)

PARALLEL_UPDATES = 0

ACTIVITY = BinarySensorEntityDescription(
    key="activity",
    translation_key="activity",
    device_class=BinarySensorDeviceClass.MOTION,
)


class ActivitySensor(AiSecurityCameraEntity, BinarySensorEntity):
    """On while the camera has an open batch: detections are being gathered into an event."""

    @property
    @override
    def is_on(self) -> bool:
        """Return whether a batch is open."""
        return self.state_data.active


def shown_circuit(endpoint: EndpointHealth) -> CircuitState:
    """Return the circuit as the connectivity sensor shows it, in step with its state.

    The sensor is off as soon as a health check fails (that is when the status turns unhealthy,
    ai_security_service_status fires and an outage starts counting), while the breaker itself
    opens only after several failures in a row. Shown raw, the attribute would then read
    "closed" on a disconnected server; it reads "open" instead, as the hub treats the server as
    down. The breaker's own state and failure count are in the diagnostics.
    """
    if endpoint.status is ServiceStatus.UNHEALTHY:
        return CircuitState.OPEN
    return endpoint.circuit


class ConnectivitySensor(AiSecurityHubEntity, BinarySensorEntity):
    """Whether one model server endpoint answered its last health check."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(
        self, coordinator: AiSecurityCoordinator, key: str, kind: ServiceKind, url: str
    ) -> None:
        """Describe the endpoint's sensor; its name says which server it is."""
        super().__init__(coordinator, key)
        self._key = key
        self._attr_translation_key = f"{kind.value}_connectivity"
        self._attr_translation_placeholders = {"url": url}

    @property
    @override
    def is_on(self) -> bool | None:
        """Return whether the endpoint is reachable (healthy or degraded)."""
        endpoint = self.coordinator.data.endpoint(self._key)
        return None if endpoint is None else endpoint.status is not ServiceStatus.UNHEALTHY

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return what the last check found: URL (no credentials), status, circuit, error."""
        endpoint = self.coordinator.data.endpoint(self._key)
        if endpoint is None:
            return {}
        return {
            "url": endpoint.url,
            "status": endpoint.status.value,
            "circuit": shown_circuit(endpoint).value,
            "last_error": endpoint.last_error,
            "latency_ms": None if endpoint.latency_ms is None else round(endpoint.latency_ms, 1),
        }


class ServerLoadSensor(AiSecurityHubEntity, BinarySensorEntity):
    """On while any load condition holds, at warning or critical level; they are its attributes.

    Each condition lists its kind (gpu_temperature, gpu_utilization, gpu_memory, llm_slots), its
    level, the figure and the level's limit (°C for the temperature, percent otherwise: GPU
    memory in percent of its total, the LLM slots in percent busy), the server and the start.
    """

    _attr_device_class = BinarySensorDeviceClass.PROBLEM
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "server_load"

    def __init__(self, coordinator: AiSecurityCoordinator) -> None:
        """Attach to the hub's device."""
        super().__init__(coordinator, "server_load")

    @property
    @override
    def is_on(self) -> bool:
        """Return whether any condition holds."""
        return bool(self.coordinator.data.load)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the conditions that hold, the most serious first."""
        conditions = sorted(
            self.coordinator.data.load, key=lambda c: c.level is not LoadLevel.CRITICAL
        )
        return {
            "conditions": [
                {
                    "kind": condition.kind.value,
                    "level": condition.level.value,
                    "value": condition.value,
                    "limit": condition.limit,
                    "server": condition.server,
                    "since": dt_util.utc_from_timestamp(condition.since).isoformat(),
                }
                for condition in conditions
            ]
        }


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a connectivity sensor per endpoint, Server load, and an activity sensor per camera.

    The sensors of endpoints that are no longer configured (reconfigure removed their URL) are
    deleted from the entity registry first.
    """
    data = entry.runtime_data
    endpoints = data.pipeline.health.endpoints()
    remove_stale_hub_entities(
        hass,
        entry.entry_id,
        Platform.BINARY_SENSOR,
        stale_endpoint({key for key, _kind, _url in endpoints}),
    )
    async_add_entities(
        [
            *(ConnectivitySensor(data.coordinator, key, kind, url) for key, kind, url in endpoints),
            ServerLoadSensor(data.coordinator),
        ]
    )
    entry.async_on_unload(
        add_camera_entities(
            hass,
            data.hub,
            async_add_entities,
            lambda camera: [ActivitySensor(data.hub, camera, ACTIVITY)],
        )
    )
