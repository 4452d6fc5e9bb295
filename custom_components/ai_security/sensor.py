"""Sensors: each camera's risk, level, detections today and last objects; the hub's diagnostics.

The platform only adds them: the camera sensors are described in sensor_camera.py, the hub's in
sensor_hub.py.
"""

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AiSecurityConfigEntry
from .core.monitor import ServiceKind
from .entity import add_camera_entities, remove_stale_hub_entities
from .sensor_camera import CAMERA_SENSORS, CameraSensor
from .sensor_hub import GPU_SENSORS, HUB_SENSORS, HubSensor

PARALLEL_UPDATES = 0


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
        if description.source is not ServiceKind.LLM or data.llm_urls or data.llm_entity
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
