"""Binary sensors: each camera's activity (an open batch), and each model server's connectivity."""

from typing import Any, override

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AiSecurityConfigEntry, AiSecurityCoordinator
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


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a connectivity sensor per endpoint and an activity sensor per camera.

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
        ConnectivitySensor(data.coordinator, key, kind, url) for key, kind, url in endpoints
    )
    entry.async_on_unload(
        add_camera_entities(
            hass,
            data.hub,
            async_add_entities,
            lambda camera: [ActivitySensor(data.hub, camera, ACTIVITY)],
        )
    )
